"""A picture of the browser app for the README: `python -m ui3d.app` on an outputs folder with one run selected,
rendered by headless Chromium (the mesh viewer is WebGL: SwiftShader draws it without a GPU).

    python -m ui3d.app.screenshot [--outputs outputs] [--run NAME] [--out benchmarks/app.png]

`--run` defaults to the newest finished run with an exported mesh; the page selects it from its address
(`?run=NAME`). Chromium is driven over its DevTools pipe, so the picture is taken once the run's details have
arrived and the viewers had `--settle` seconds to draw. Needs `chromium` on the PATH (`apt-get install chromium`).
A PNG over 500 KB is reduced to a 256-colour palette.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from PIL import Image

MAX_BYTES = 500_000
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--hide-scrollbars", "--use-angle=swiftshader",
                  "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist", "--mute-audio", "--no-first-run"]


class Chromium:
    """Headless Chromium driven over `--remote-debugging-pipe` (it reads commands on fd 3 and answers on fd 4,
    JSON messages ended by NUL). Start it from a process without threads (it forks with a `preexec_fn`)."""

    def __init__(self, binary: str, profile: str):
        to_r, self._to = os.pipe()
        self._from, from_w = os.pipe()

        def remap():  # the child's fd 3 and 4; F_DUPFD first, so neither lands on the other's number
            a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        argv = [binary, *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
        self.process = subprocess.Popen(argv, preexec_fn=remap, close_fds=False,  # noqa: PLW1509 (no threads here)
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._buffer, self._id, self.session = b"", 0, None

    def send(self, method: str, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed its DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str, width: int, height: int) -> None:
        page = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.send("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float) -> None:
        deadline = time.time() + timeout
        while not self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value"):
            if time.time() > deadline:
                raise RuntimeError(f"the page did not show what was awaited ({expression}) within {timeout:.0f} s")
            time.sleep(0.5)

    def screenshot(self) -> Image.Image:
        return Image.open(io.BytesIO(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])))

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.process.wait(timeout=10)
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            self.process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pick_run(outputs: Path, name: str | None) -> str:
    from ui3d.app.runs import OutsideOutputs, list_runs, resolve_run

    if name:
        try:
            resolve_run(outputs, name)
        except OutsideOutputs as err:
            raise SystemExit(f"error: --run {err}") from None
        return name
    finished = [r for r in list_runs(outputs) if r.finished and r.glb is not None]
    if not finished:
        raise SystemExit(f"error: no finished run with an exported mesh in {outputs}: train one first "
                         "(python launch.py --config uniinstruct-fkl.yaml prompt=\"a red vase\") or give --run")
    return finished[0].name


def serve(outputs: Path, port: int) -> subprocess.Popen:
    """`python -m ui3d.app` in a child process, once it answers."""
    app = subprocess.Popen([sys.executable, "-m", "ui3d.app", "--outputs", str(outputs), "--port", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return app
        except OSError:
            if app.poll() is not None:
                raise SystemExit(f"error: the app exited: {app.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
    app.terminate()
    raise SystemExit("error: the app did not answer within 2 minutes")


def save(image: Image.Image, out: Path) -> None:
    from ui3d import files

    with files.atomic_path(out) as tmp:
        image.convert("RGB").save(tmp, format="PNG", optimize=True)
        if Path(tmp).stat().st_size > MAX_BYTES:
            image.convert("RGB").quantize(colors=256).save(tmp, format="PNG", optimize=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outputs", type=Path, default=Path("outputs"))
    p.add_argument("--run", help="the run to show, relative to --outputs (default: the newest finished one)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/app.png"))
    p.add_argument("--size", default="1400,1800", help="window size W,H (default 1400,1800)")
    p.add_argument("--settle", type=float, default=10.0, help="seconds the viewers get to draw (default 10)")
    p.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    args = p.parse_args(argv)
    if not args.outputs.is_dir():
        print(f"error: --outputs {args.outputs} is not a folder", file=sys.stderr)
        return 2
    if not shutil.which(args.chromium):
        print(f"error: no Chromium at '{args.chromium}': apt-get install chromium, or give --chromium PATH",
              file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.split(","))
    outputs = args.outputs.resolve()
    name = pick_run(outputs, args.run)
    port = free_port()
    app = serve(outputs, port)
    try:
        with tempfile.TemporaryDirectory() as profile:
            browser = Chromium(args.chromium, profile)
            try:
                browser.open(f"http://127.0.0.1:{port}/?run={quote(name)}", width, height)
                browser.wait_for(f"document.body.innerText.includes({json.dumps(name)}) && "
                                 "document.querySelectorAll('canvas').length > 0", timeout=120)
                time.sleep(args.settle)
                save(browser.screenshot(), args.out)
            finally:
                browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
    print(f"{args.out}: {name}, {args.out.stat().st_size // 1000} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
