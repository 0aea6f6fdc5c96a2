"""The browser app's page (gradio Blocks): the runs of an outputs folder, and a form that starts a new one.

Every event has an `api_name`, so `gradio_client` drives the app as a browser does (`tests/test_app.py`):
`/list_runs`, `/show_run`, `/show_turntable`, `/plot_metric`, `/score_run`, `/start_run`, `/cancel_run`. A run is
named by its path relative to the outputs folder; every function that takes one resolves it with
`ui3d.app.runs.resolve_run`, which refuses anything outside the folder. The server is launched with
`allowed_paths` = the outputs folder alone, so its file route serves nothing else (gradio's own upload and cache
folders aside).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from ui3d.app.jobs import (
    LAUNCH,
    Job,
    Jobs,
    Refused,
    check,
    configs,
    launch_args,
    warm_up,
)
from ui3d.app.runs import OutsideOutputs, Run, list_runs, metrics, read_run, resolve_run

HEADERS = ["run", "config", "prompt", "stages (steps, time)", "started"]
DEFAULT_METRIC = "train/loss"
POLL_S = 0.5


def _started(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def _describe(run) -> str:
    lines = [f"### {run.prompt or run.name}", f"`{run.name}` · config `{run.config}` · started {_started(run.started)}",
             "", "| stage | steps | time |", "| --- | --- | --- |"]
    for s in run.stages:
        done = s in run.result.stage_steps
        steps = run.result.stage_steps[s] if done else f"not finished (of {run.max_steps.get(s, '?')})"
        lines.append(f"| {s} | {steps} | {f'{run.result.stage_seconds[s]:.1f} s' if done else '–'} |")
    if not run.finished:
        lines += ["", f"Continue it: New run, overrides `resume={run.run_dir}`"]
    return "\n".join(lines)


def _scores(run) -> str:
    if not run.scores:
        return "No scores yet: *Score this run* computes them (`mesh_quality` for an exported mesh, else " \
               "`score_run` on the first stage's turntable)."
    return "\n\n".join(f"**{p.relative_to(run.run_dir)}**\n\n{p.read_text()}" for p in run.scores)


def _plot(run, metric: str) -> pd.DataFrame:
    rows = [r for r in metrics(run) if r["metric"] == metric]
    return pd.DataFrame(rows or None, columns=["stage", "step", "metric", "value"])


def _follow(job: Job, status):
    """Yield `status(job)` and the output's tail every POLL_S seconds until the child exits."""
    while job.running:
        yield status(job), job.log()
        time.sleep(POLL_S)
    job.process.wait()


def _state(job: Job) -> str:
    if job.running:
        return f"**running** {job.progress()}" + (" (cancelling)" if job.cancelled else "")
    if job.code == 0:
        return f"**finished** {job.progress()}"
    if job.code in (130, 143):
        return f"**cancelled** at {job.progress()}: continue with overrides `resume={job.run_dir}`"
    return f"**failed** (exit {job.code}): {job.error()}"


class Handlers:
    """What the page's events call, on one outputs folder: each method is one `api_name`."""

    def __init__(self, outputs: Path, jobs: Jobs | None = None):
        self.outputs, self.jobs = Path(outputs).resolve(), jobs or Jobs()

    def run(self, name: str) -> Run:
        """The run a client names, or gr.Error when the name leads outside the outputs folder or to no run."""
        try:
            return read_run(self.outputs, resolve_run(self.outputs, name))
        except OutsideOutputs as err:
            raise gr.Error(str(err)) from None

    def runs(self) -> tuple[list[str], pd.DataFrame]:
        runs = list_runs(self.outputs)
        rows = [[r.name, r.config, r.prompt, r.stage_summary(), _started(r.started)] for r in runs]
        return [r.name for r in runs], pd.DataFrame(rows or None, columns=HEADERS)

    def list_runs(self):
        names, rows = self.runs()
        return rows, gr.update(choices=names)

    def on_load(self, request: gr.Request):
        """The run named in the page's address (`?run=<name>`) selected, else the newest."""
        names, rows = self.runs()
        wanted = request.query_params.get("run") if request else None
        return rows, gr.update(choices=names, value=wanted if wanted in names else next(iter(names), None))

    def show_run(self, name: str, metric: str):
        run = self.run(name)
        names = sorted({r["metric"] for r in metrics(run)})
        metric = metric if metric in names else DEFAULT_METRIC if DEFAULT_METRIC in names else next(iter(names), None)
        turntables = [p.relative_to(run.run_dir).as_posix() for p in run.turntables]
        return (_describe(run), str(run.glb) if run.glb else None,
                gr.update(choices=turntables, value=turntables[0] if turntables else None),
                str(run.turntables[0]) if run.turntables else None,
                [(str(p), f"{p.parent.parent.name} {p.stem}") for p in run.grids],
                gr.update(choices=names, value=metric), _plot(run, metric), _scores(run))

    def show_turntable(self, name: str, which: str):
        run = self.run(name)
        found = [p for p in run.turntables if p.relative_to(run.run_dir).as_posix() == which]
        if not found:
            raise gr.Error(f"'{which}' is not a turntable of {run.name}: pick one of the list")
        return str(found[0])

    def plot_metric(self, name: str, metric: str):
        return _plot(self.run(name), metric)

    def start_run(self, config: str, prompt: str, overrides: str):
        """Check, start, follow: yields (status, output, run name, GLB once finished)."""
        try:
            args = launch_args(config, prompt, overrides, self.outputs)
            check(args, self.outputs)
            job = self.jobs.start([str(LAUNCH), *args])
        except Refused as err:
            raise gr.Error(str(err)) from None
        name = ""
        for status, log in _follow(job, _state):
            name = job.run_dir.resolve().relative_to(self.outputs).as_posix() if job.run_dir else ""
            yield status, log, name, None
        made = job.run_dir is not None and (job.run_dir / "config.yaml").is_file()
        glb = read_run(self.outputs, job.run_dir).glb if made else None
        yield _state(job), job.log(), name, str(glb) if glb else None

    def score_run(self, name: str):
        """`mesh_quality` on the exported mesh (else `score_run` on the first stage's turntable), as a job."""
        run = self.run(name)
        module = "mesh_quality" if run.glb else "score_run"
        try:
            job = self.jobs.start(["-m", f"ui3d.benchmarks.{module}", str(run.run_dir),
                                   *([] if run.glb else ["--stage", run.stages[0]])])
        except Refused as err:
            raise gr.Error(str(err)) from None
        for status, _ in _follow(job, lambda _: f"scoring ({module}) …"):
            yield status
        if job.code != 0:
            raise gr.Error(f"{module} failed (exit {job.code}): {job.error()}")
        yield _scores(self.run(name))

    def cancel_run(self) -> str:
        return self.jobs.cancel()


def build(outputs: Path, jobs: Jobs | None = None) -> gr.Blocks:
    """The page on `outputs` (an existing folder); `jobs` runs its child processes (one is made if not given)."""
    on = Handlers(outputs, jobs)
    with gr.Blocks(title="ui3d", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## ui3d · runs in `{on.outputs}`")
        with gr.Tab("Runs"):
            with gr.Row():
                selected = gr.Dropdown(label="run", choices=[], allow_custom_value=True, scale=5)
                refresh = gr.Button("Refresh", scale=1)
            with gr.Row():
                with gr.Column(scale=3):
                    model = gr.Model3D(label="exported mesh (model.glb)", height=460,
                                       clear_color=(0.92, 0.92, 0.92, 1))
                with gr.Column(scale=2):
                    info = gr.Markdown()
            with gr.Row():
                with gr.Column(scale=2):
                    which = gr.Dropdown(label="turntable", choices=[], allow_custom_value=True)
                    turntable = gr.Video(label="turntable", autoplay=True, loop=True, height=300)
                with gr.Column(scale=3):
                    metric = gr.Dropdown(label="metric (logs/metrics.csv)", choices=[], allow_custom_value=True)
                    plot = gr.LinePlot(x="step", y="value", color="stage", height=300)
            grids = gr.Gallery(label="validation views, newest first (rgb | normal | opacity)", columns=4, height=300,
                               object_fit="contain")
            scores = gr.Markdown()
            score = gr.Button("Score this run")
            runs = gr.Dataframe(headers=HEADERS, interactive=False, label="runs (newest first)")
        with gr.Tab("New run"):
            with gr.Row():
                config = gr.Dropdown(configs(), value="uniinstruct-fkl.yaml", label="config", scale=2)
                prompt = gr.Textbox(label="prompt", placeholder="a red vase", scale=3)
            overrides = gr.Textbox(label="overrides (key=value, as on launch.py's command line)",
                                   placeholder="steps=100 seed=1")
            with gr.Row():
                start = gr.Button("Start", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
            status = gr.Markdown()
            with gr.Row():
                log = gr.Textbox(label="output", lines=14, max_lines=14, autoscroll=True, scale=3)
                with gr.Column(scale=2):
                    new_run = gr.Textbox(label="run", interactive=False)
                    new_glb = gr.Model3D(label="result", height=300)

        details = [info, model, which, turntable, grids, metric, plot, scores]
        free = {"concurrency_limit": None}  # reads: any number at once
        one = {"concurrency_limit": 1, "concurrency_id": "job"}  # runs and scoring: one at a time, queued
        refresh.click(on.list_runs, None, [runs, selected], api_name="list_runs", **free)
        selected.change(on.show_run, [selected, metric], details, api_name="show_run", **free)
        which.input(on.show_turntable, [selected, which], turntable, api_name="show_turntable", **free)
        metric.input(on.plot_metric, [selected, metric], plot, api_name="plot_metric", **free)
        score.click(on.score_run, selected, scores, api_name="score_run", **one)
        start.click(on.start_run, [config, prompt, overrides], [status, log, new_run, new_glb], api_name="start_run",
                    **one).then(on.list_runs, None, [runs, selected], api_name=False, **free)
        cancel.click(on.cancel_run, None, status, api_name="cancel_run", **free)
        demo.load(on.on_load, None, [runs, selected], api_name=False)
    return demo


def launch(outputs: Path, host: str = "127.0.0.1", port: int | None = None, **kwargs) -> gr.Blocks:
    """Serve the app on `host:port`, files from `outputs` only; returns the launched Blocks (`local_url`,
    `close()`). `kwargs` go to gradio's `launch` (`prevent_thread_lock=True` returns at once)."""
    outputs = Path(outputs).resolve()
    demo = build(outputs)
    threading.Thread(target=warm_up, daemon=True).start()
    demo.launch(server_name=host, server_port=port, allowed_paths=[str(outputs)], ssr_mode=False, mcp_server=False,
                **kwargs)
    return demo
