"""The browser app (`python -m ui3d.app`), driven by `gradio_client` as a browser drives it: the runs of an outputs
folder, a run started from the page (a `launch.py` child), a prompt refused before anything starts, and nothing
read or served from outside the outputs folder."""
import shlex
import socket
from pathlib import Path

import pytest

pytest.importorskip("gradio")
from gradio_client import Client
from gradio_client.exceptions import AppError

import launch
from tests.systems.test_configs import tiny_overrides
from ui3d.app.jobs import Job
from ui3d.app.ui import launch as launch_app
from ui3d.teachers.loader import EMBEDDED_DIR

EXPORT = ["system.export_mesh=true", "system.export.resolution=32", "system.export.texture_size=64",
          "system.export.turntable_views=2", "system.export.turntable_size=32"]
"""dreamfusion.yaml's one stage, exporting a small mesh: the quickest run that ends in a GLB."""


def tiny(root, tag: str) -> list[str]:
    overrides = tiny_overrides("dreamfusion.yaml", {"embedded": str(EMBEDDED_DIR), "sd": ""}, root)
    return [o for o in overrides if not o.startswith(("prompt=", "exp_root_dir=", "tag="))] + [f"tag={tag}", *EXPORT]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app on an outputs folder holding one finished 2-step run (made in-process), and a client."""
    root = tmp_path_factory.mktemp("app")
    outputs = root / "outputs"
    args = ["--config", "dreamfusion.yaml", "prompt=a red vase", f"exp_root_dir={outputs}", *tiny(root, "listed")]
    assert launch.main(args) == 0
    (root / "secret.txt").write_text("outside the outputs folder")
    demo = launch_app(outputs, port=free_port(), prevent_thread_lock=True, quiet=True)
    yield Client(demo.local_url, verbose=False), outputs, root
    demo.close()


def test_the_runs_are_listed_and_a_run_shows_its_mesh_views_curves_and_scores(app):
    client, outputs, _ = app
    (run_dir,) = (outputs / "dreamfusion").glob("listed@*")
    (run_dir / "nerf" / "save" / "score.md").write_text("| category | vase | 90% |\n")
    table, _ = client.predict(api_name="/list_runs")
    name = run_dir.relative_to(outputs).as_posix()
    (row,) = [r for r in table["data"] if r[0] == name]
    assert row[:3] == [name, "dreamfusion", "a red vase"] and row[3].startswith("nerf 2 steps ")
    info, glb, which, video, grids, metric, plot, scores = client.predict(name, "", api_name="/show_run")
    assert "a red vase" in info and "| nerf | 2 |" in info
    assert glb.endswith("model.glb") and Path(glb).read_bytes()[:4] == b"glTF"
    assert which["value"] == "nerf/save/export/turntable.mp4" and video.endswith(".mp4")
    assert [g["caption"] for g in grids] == ["nerf it2-0", "nerf it1-0"]
    assert metric["value"] == "train/loss" and [row[:2] for row in plot["data"]] == [["nerf", 0], ["nerf", 1]]
    assert "| category | vase | 90% |" in scores
    turntable = client.predict(name, "nerf/save/turntable.mp4", api_name="/show_turntable")
    assert turntable.endswith("turntable.mp4")


def test_a_run_started_from_the_page_trains_and_returns_its_mesh(app):
    client, outputs, root = app
    job = client.submit("dreamfusion.yaml", "a blue vase", " ".join(shlex.quote(o) for o in tiny(root, "started")),
                        api_name="/start_run")
    statuses = [out[0] for out in job]
    status, log, name, glb = job.outputs()[-1]
    assert status == "**finished** nerf done", log
    assert any("running" in s for s in statuses) and "nerf: 100%" in log
    assert name.startswith("dreamfusion/started@") and (outputs / name / "nerf" / "done").is_file()
    assert glb.endswith("model.glb") and Path(glb).read_bytes()[:4] == b"glTF"
    listed = [row[0] for row in client.predict(api_name="/list_runs")[0]["data"]]
    assert listed[0] == name



def test_live_progress_is_read_from_the_childs_stage_bars(app, tmp_path):
    _, outputs, _ = app
    (run_dir,) = (outputs / "dreamfusion").glob("listed@*")
    (tmp_path / "config.yaml").write_text((run_dir / "config.yaml").read_text())  # the run, not finished
    job = Job(["launch.py"], process=None)
    assert job.progress() == "starting"
    for line in [f"run directory: {tmp_path}", "nerf: |          | 0/? [00:00<?, ?it/s]",
                 "nerf:  50%|█████     | 1/2 [00:00<00:00,  4.42it/s, loss=3.12e+4]"]:
        job.add(line)
    assert job.progress() == "nerf 1/2" and job.run_dir == tmp_path
    job.add("nerf: 100%|██████████| 2/2 [00:00<00:00,  4.33it/s, loss=6.1e+3]")  # the same bar: its line replaced
    job.add("nerf: validation views: 100%|██████████| 1/1 [00:00<00:00, 46.64it/s]\x1b[A")
    job.add("Testing:   0%|          | 0/7 [00:00<?, ?it/s]")  # Lightning's own bar: not a stage
    assert job.progress() == "nerf 2/2"
    assert job.log().splitlines() == [
        f"run directory: {tmp_path}", "nerf: |          | 0/? [00:00<?, ?it/s]",
        "nerf: 100%|██████████| 2/2 [00:00<00:00,  4.33it/s, loss=6.1e+3]",
        "nerf: validation views: 100%|██████████| 1/1 [00:00<00:00, 46.64it/s]",
        "Testing:   0%|          | 0/7 [00:00<?, ?it/s]"]
    (tmp_path / "nerf").mkdir()
    (tmp_path / "nerf" / "done").write_text("2 steps, 1.0 s\n")
    assert job.progress() == "nerf done"

def test_an_unknown_prompt_word_is_refused_before_anything_starts(app):
    client, outputs, root = app
    before = sorted(outputs.rglob("*"))
    with pytest.raises(AppError, match="'artistic'.*\n.*Its vocabulary"):
        client.predict("dreamfusion.yaml", "a vase with artistic patterns", " ".join(tiny(root, "refused")),
                       api_name="/start_run")
    with pytest.raises(AppError, match="exp_root_dir: the app writes its runs into its outputs folder"):
        client.predict("dreamfusion.yaml", "a vase", f"exp_root_dir={root}", api_name="/start_run")
    with pytest.raises(AppError, match="outside the outputs folder"):
        client.predict("dreamfusion.yaml", "a vase", " ".join(tiny(root, "x")) + " name=../..", api_name="/start_run")
    assert sorted(outputs.rglob("*")) == before


def test_nothing_outside_the_outputs_folder_is_read_or_served(app):
    client, outputs, root = app
    (run_dir,) = (outputs / "dreamfusion").glob("listed@*")
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    (outputs / "escape").symlink_to(root, target_is_directory=True)  # links out of the folder
    (outputs / "family").mkdir()
    (outputs / "family" / "linked@1").symlink_to(root / "elsewhere", target_is_directory=True)
    (outputs / "leak.txt").symlink_to(root / "secret.txt")
    for name in ["../outputs/dreamfusion", str(run_dir), "/etc", "escape/elsewhere", "family/linked@1",
                 "dreamfusion/../../elsewhere"]:
        with pytest.raises(AppError, match="is not a run of this app|leads outside the outputs folder"):
            client.predict(name, "", api_name="/show_run")
    assert "family/linked@1" not in [row[0] for row in client.predict(api_name="/list_runs")[0]["data"]]
    with pytest.raises(AppError, match="is not a turntable of"):
        client.predict(run_dir.relative_to(outputs).as_posix(), "../../secret.txt", api_name="/show_turntable")
    import httpx

    base = client.src.rstrip("/")
    assert httpx.get(f"{base}/gradio_api/file={root / 'secret.txt'}").status_code == 403
    assert httpx.get(f"{base}/gradio_api/file={outputs / 'leak.txt'}").status_code == 403
    glb = next(outputs.rglob("model.glb"))
    assert httpx.get(f"{base}/gradio_api/file={glb}").status_code == 200


def test_the_command_line_refuses_a_missing_outputs_folder(tmp_path, capsys):
    from ui3d.app.__main__ import main

    assert main(["--outputs", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --outputs {tmp_path / 'none'} is not a folder")
