"""The prompt-suite benchmark: the suite's coverage of the teacher's words, its plan, and its tables."""
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from ui3d.benchmarks import prompt_suite
from ui3d.benchmarks.score_run import prompt_labels
from ui3d.teachers.embedded.classifier import HEADS


def test_the_suite_names_every_category_and_colour_twice_and_every_pattern():
    prompts = prompt_suite.read_prompts(prompt_suite.SUITE)
    assert len(prompts) >= 20 and len(set(prompts)) == len(prompts)
    labels = [prompt_labels(p) for p in prompts]
    for head in ("category", "color"):
        for word in HEADS[head]:
            assert sum(lab.get(head) == word for lab in labels) >= 2, (head, word)
    assert {lab["pattern"] for lab in labels if "pattern" in lab} == set(HEADS["pattern"])
    assert sum("color" not in lab for lab in labels) >= 2
    assert all("category" in lab for lab in labels)
    assert set(prompt_suite.QUICK_PROMPTS) <= set(prompts)
    assert set(prompt_suite.DIVERSITY_PROMPTS) <= set(prompts)
    assert all("color" not in prompt_labels(p) for p in prompt_suite.DIVERSITY_PROMPTS)


def test_read_prompts_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# words\n\na vase\n  a red mug  \n# a bowl\n")
    assert prompt_suite.read_prompts(path) == ["a vase", "a red mug"]


def plan_args(**kw):
    base = dict(prompts=None, quick=False, prompt_file=prompt_suite.SUITE, configs=None, set=[], part="all",
                seeds=[0, 1], suite_seeds=[0], teacher_samples=8, teacher_frames=4, stage1_only=False,
                root=Path("/nowhere"))
    return Namespace(**{**base, **kw})


def test_the_full_plan_runs_every_config_on_every_prompt_and_the_headline_through_all_stages():
    tasks, runs, configs, prompts = prompt_suite.plan(plan_args())
    suite = [r for r in runs.values() if r.seed == 0 and r.prompt in prompts]
    assert {(r.config, r.prompt) for r in suite} >= {(c, p) for c in configs for p in prompts}
    assert all(r.all_stages == (r.config == prompt_suite.HEADLINE) for r in suite)
    diversity = [r for r in runs.values() if r.seed == 1]
    assert {(r.config, r.prompt) for r in diversity} == {(c, p) for c in configs for p in prompt_suite.DIVERSITY_PROMPTS}
    assert len(runs) == len(configs) * (len(prompts) + len(prompt_suite.DIVERSITY_PROMPTS))  # seed 0 is the suite's
    assert {f"teacher {p}" for p in prompt_suite.DIVERSITY_PROMPTS} <= set(tasks)
    assert {k for k in tasks if k.startswith("teacher-score ")} == {f"teacher-score {p}" for p in prompts}
    assert len({r.tag for r in runs.values()}) == len(runs)
    first = next(iter(tasks))
    assert runs[first].all_stages  # the longest tasks are handed out first


def test_the_quick_plan_is_the_headline_stage_1_on_six_prompts():
    tasks, runs, configs, prompts = prompt_suite.plan(plan_args(quick=True, part="suite"))
    assert configs == [prompt_suite.HEADLINE] and len(prompts) == 6
    assert len(tasks) == 6 + 6 and not any(r.all_stages for r in runs.values())  # and the teacher on each
    tasks, *_ = prompt_suite.plan(plan_args(quick=True, part="suite", teacher_frames=0))
    assert len(tasks) == 6


def test_suite_seeds_run_every_config_on_every_prompt_once_per_seed():
    tasks, runs, configs, prompts = prompt_suite.plan(plan_args(quick=True, part="suite", suite_seeds=[0, 3]))
    assert sorted((r.prompt, r.seed) for r in runs.values()) == sorted((p, s) for p in prompts for s in (0, 3))
    assert len(tasks) == 12 + 6 and len({r.tag for r in runs.values()}) == 12


def test_the_seed_table_gives_mean_and_spread_over_seeds():
    prompts = ["a vase", "a red mug"]
    runs = {(p, s): prompt_suite.Run("uniinstruct-fkl.yaml", p, s) for p in prompts for s in (0, 1)}
    results = {runs["a vase", 0]: scored(1.0), runs["a vase", 1]: scored(0.6),
               runs["a red mug", 0]: scored(0.2, 1.0, collapse="filled"), runs["a red mug", 1]: scored(0.6, 0.5)}
    table = prompt_suite.seed_tables(results, ["uniinstruct-fkl.yaml"], prompts, [0, 1])
    # per seed: category 60 % and 60 %, colour 100 % and 50 %; the mug's mean over seeds is 40 %
    assert "| uniinstruct-fkl | 60 % ± 0 | 40 % | 1 / 2 | 75 % ± 35 | — | 1 / 4 |" in table
    assert "| a vase | 80 (60–100) |" in table and "| a red mug | 40 (20–60) |" in table


def scored(category, color=None, pattern=None, collapse=None, at_clamp=None, size=1.0):
    accuracy = {"category": category, **({"color": color} if color is not None else {}),
                **({"pattern": pattern} if pattern is not None else {})}
    ratio = None if at_clamp is None else {"at_clamp": at_clamp, "h_std": 0.5, "h_p10": 0.6, "h_p90": 1.4}
    return {"turntable": {"accuracy": accuracy, "collapse": collapse, "categories": [("vase", 30)], "size": size},
            "ratio": ratio, "seconds": {"nerf": 100.0}}


def test_the_summary_averages_colour_and_pattern_over_the_prompts_that_name_them():
    runs = [prompt_suite.Run("uniinstruct-fkl.yaml", p) for p in ("a vase", "a red mug", "a blue striped bowl")]
    results = dict(zip(runs, [scored(1.0, at_clamp=0.0), scored(0.5, 1.0, collapse="filled", at_clamp=0.2, size=1.5),
                              scored(0.7, 0.5, 0.0, at_clamp=0.1, size=0.8)]))
    s = prompt_suite.summary(results, runs)
    assert s["category"] == pytest.approx(2.2 / 3) and s["category_min"] == 0.5 and s["prompts_half"] == 3
    assert s["color"] == pytest.approx(0.75) and s["pattern"] == 0.0
    assert s["collapses"] == [("a red mug", "filled")] and s["at_clamp"] == pytest.approx(0.1)
    assert s["size"] == pytest.approx(1.1) and s["size_max"] == 1.5
    table = prompt_suite.suite_tables(results, ["uniinstruct-fkl.yaml"], [r.prompt for r in runs])
    assert "| uniinstruct-fkl | 73 % | 50 % | 3 / 3 | 75 % | 0 % | a red mug (filled) | 1.10× (1.50×) | 10 % |" in table
    assert "| a red mug | 50/100 vase 1.50× **filled** |" in table
    teacher = {"a vase": {"accuracy": {"category": 1.0}, "categories": [("vase", 4)], "frames": 4},
               "a red mug": {"accuracy": {"category": 0.25, "color": 1.0}, "categories": [("cup", 3)], "frames": 4},
               "a blue striped bowl": {"accuracy": {"category": 0.75, "color": 0.5, "pattern": 1.0},
                                       "categories": [("bowl", 3)], "frames": 4}}
    table = prompt_suite.suite_tables(results, ["uniinstruct-fkl.yaml"], [r.prompt for r in runs], teacher)
    assert "| the teacher's own samples (4 per prompt) | 67 % | 25 % | 2 / 3 | 75 % | 100 % |" in table
    assert "| a red mug | 25/100 cup | 50/100 vase 1.50× **filled** |" in table


def test_the_mesh_table_counts_the_targets_on_the_exported_meshes():
    def mesh(category, color, chamfer, sphere=0.19, floor=0.028):
        views = {"category": category, **({"color": color} if color is not None else {})}
        return {"views": views, "chamfer": chamfer, "sphere": sphere, "floor": floor}

    prompts = ("a vase", "a red mug", "a ball")
    runs = [prompt_suite.Run("uniinstruct-fkl.yaml", p, all_stages=True) for p in prompts]
    results = {runs[0]: {"meshes": {s: mesh(8, None, 0.05) for s in prompt_suite.STAGES}},
               runs[1]: {"meshes": {s: mesh(5, 7, 0.25) for s in prompt_suite.STAGES}},
               runs[2]: {"meshes": {s: mesh(8, None, 0.04, sphere=0.029) for s in prompt_suite.STAGES}}}
    table = prompt_suite.mesh_table(results)
    assert "category on ≥ 6 / 8 views for 2 / 3 prompts (67 %)" in table
    assert "colour on ≥ 7 / 8 views for 1 / 1 prompts" in table and "Chamfer below the sphere's for 1 / 3" in table
    assert "ground-truth shape of 1 prompts' category" in table and "theirs 0.040" in table
    assert "below the sphere's on 1 / 2 of the others" in table
    del results[runs[2]]  # without a ball the table says nothing of the floor
    assert "ground-truth" not in prompt_suite.mesh_table(results)


def write_coloured_sphere(folder: Path, rgb: tuple[int, int, int]) -> Path:
    import trimesh
    from PIL import Image

    from ui3d.export.mesh import write_obj
    from ui3d.export.uv import UVMesh

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    vertices = torch.tensor(sphere.vertices, dtype=torch.float32)
    mesh = UVMesh(vertices, torch.tensor(sphere.faces), torch.full((len(vertices), 2), 0.5),
                  torch.arange(len(vertices)))
    folder.mkdir()
    Image.new("RGB", (4, 4), rgb).save(folder / "texture.png")
    return write_obj(folder, mesh)[0]


def test_the_mesh_picture_shows_each_mesh_in_its_tile(tmp_path):
    import numpy as np
    from PIL import Image

    meshes = [("a red ball", write_coloured_sphere(tmp_path / "red", (255, 0, 0))),
              ("a blue ball", write_coloured_sphere(tmp_path / "blue", (0, 0, 255))),
              ("a red ball", write_coloured_sphere(tmp_path / "red2", (255, 0, 0)))]
    out = tmp_path / "meshes.png"
    prompt_suite.mesh_picture(meshes, out, views=2, size=32, columns=2)
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert sheet.shape == (2 * (32 + 14), 2 * 64, 3)
    centres = {(0, 0): "red", (0, 1): "blue", (1, 0): "red"}
    for (row, col), colour in centres.items():
        for view in range(2):
            r, g, b = sheet[row * 46 + 16, col * 64 + view * 32 + 16]
            assert (r > 2 * b) if colour == "red" else (b > 2 * r), (row, col, view, (r, g, b))
    assert (sheet[46 + 16, 64 + 16] == 255).all()  # no fourth mesh: white
    assert not list(tmp_path.glob("*.tmp"))


def test_find_run_skips_a_directory_a_killed_run_left_without_its_config(tmp_path):
    (tmp_path / "uniinstruct-fkl" / "t-s0@20261201-000001").mkdir(parents=True)
    (tmp_path / "uniinstruct-fkl" / "t-s0@20261201-000001" / "config.yaml").write_text("name: x\n")
    (tmp_path / "uniinstruct-fkl" / "t-s0@20261201-000002" / "nerf" / "ckpts").mkdir(parents=True)
    assert prompt_suite.find_run(tmp_path, "t-s0") == tmp_path / "uniinstruct-fkl" / "t-s0@20261201-000001"
    assert prompt_suite.find_run(tmp_path, "other") is None
