"""The prompt-suite benchmark: the suite's coverage of the teacher's words, its plan, and its tables."""
from argparse import Namespace
from pathlib import Path

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
                seeds=[0, 1], teacher_samples=8, stage1_only=False, root=Path("/nowhere"))
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
    assert len({r.tag for r in runs.values()}) == len(runs)
    first = next(iter(tasks))
    assert runs[first].all_stages  # the longest tasks are handed out first


def test_the_quick_plan_is_the_headline_stage_1_on_six_prompts():
    tasks, runs, configs, prompts = prompt_suite.plan(plan_args(quick=True, part="suite"))
    assert configs == [prompt_suite.HEADLINE] and len(prompts) == 6
    assert len(tasks) == 6 and not any(r.all_stages for r in runs.values())
