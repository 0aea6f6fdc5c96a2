"""`python -m ui3d.app [--outputs DIR] [--host 127.0.0.1] [--port N]`: the browser app on an outputs folder."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ui3d.app", description="ui3d in the browser: the runs of an outputs "
                                "folder (meshes, turntables, validation views, loss curves, scores) and new runs.")
    p.add_argument("--outputs", type=Path, default=Path("outputs"),
                   help="the folder runs are written to and read from (launch.py's exp_root_dir; default: outputs)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1: this machine only; anyone who reaches another "
                        "address can start runs)")
    p.add_argument("--port", type=int, default=None, help="port (default: 7860, or the next free one)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.outputs.is_dir():
        print(f"error: --outputs {args.outputs} is not a folder: give the folder your runs are in (launch.py writes "
              "them to outputs/ of the folder it runs in)", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: whoever reaches it can see every run and start new ones",
              file=sys.stderr)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ui3d.app.ui import launch

    launch(args.outputs, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
