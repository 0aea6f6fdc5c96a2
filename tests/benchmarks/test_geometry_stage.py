"""The stage-2 benchmark: its variants, the copies it refines (the source run untouched), its table."""
import pytest
from omegaconf import OmegaConf

from ui3d.benchmarks import geometry_stage


def test_variants_by_name_or_inline_overrides():
    assert geometry_stage.parse_variant("no-guidance") == ("no-guidance", {"system.loss.lambda_sds": 0.0})
    name, overrides = geometry_stage.parse_variant("strong=system.loss.lambda_sds=2.0,trainer.max_steps=50")
    assert name == "strong" and overrides == {"system.loss.lambda_sds": 2.0, "trainer.max_steps": 50}
    with pytest.raises(SystemExit, match="unknown variant 'bogus'"):
        geometry_stage.parse_variant("bogus")
    with pytest.raises(SystemExit, match="cannot read variant"):
        geometry_stage.parse_variant("x=system.loss.lambda_sds")
    name, overrides = geometry_stage.parse_variant("nm7=normals,system.guidance.guidance_scale=7.5")
    assert overrides == {**geometry_stage.VARIANTS["normals"], "system.guidance.guidance_scale": 7.5}
    assert overrides["system.guidance_input"] == "comp_normal_vis"


def test_prepare_copies_stage_one_and_overrides_only_the_copys_geometry_stage(tmp_path):
    source = tmp_path / "run@1"
    (source / "nerf" / "ckpts").mkdir(parents=True)
    (source / "nerf" / "ckpts" / "last.ckpt").write_bytes(b"weights")
    (source / "nerf" / "done").write_text("600 steps, 1 s")
    OmegaConf.save(OmegaConf.create({"system": {"prompt_processor": {"prompt": "a vase"}},
                                     "stages": {"nerf": {}, "geometry": {"system": {"loss": {"lambda_sds": 1.0}}}}}),
                   source / "config.yaml")
    copy = geometry_stage.prepare(source, tmp_path / "v" / "run@1", {"system.loss.lambda_sds": 0.0,
                                                                     "system.guidance.min_step_percent": 0.5})
    cfg = OmegaConf.load(copy / "config.yaml")
    assert cfg.stages.geometry.system.loss.lambda_sds == 0.0
    assert cfg.stages.geometry.system.guidance.min_step_percent == 0.5
    assert (copy / "nerf" / "ckpts" / "last.ckpt").read_bytes() == b"weights"
    assert OmegaConf.load(source / "config.yaml").stages.geometry.system.loss.lambda_sds == 1.0
    assert geometry_stage.prompt_of(copy) == "a vase"
    (copy / "geometry").mkdir()
    (copy / "geometry" / "done").write_text("done")
    assert geometry_stage.prepare(source, copy, {"system.loss.lambda_sds": 0.0,
                                                 "system.guidance.min_step_percent": 0.5}) == copy
    assert (copy / "geometry" / "done").is_file()  # the same variant: kept
    geometry_stage.prepare(source, copy, {"system.loss.lambda_sds": 2.0})  # the same name, other overrides: redone
    assert not (copy / "geometry").exists()
    assert OmegaConf.load(copy / "config.yaml").stages.geometry.system.loss.lambda_sds == 2.0
    with pytest.raises(SystemExit, match="not a finished stage-1 run"):
        geometry_stage.main([str(tmp_path / "missing"), "--root", str(tmp_path / "r")])


def test_table_counts_the_runs_stage_two_made_better_and_worse():
    rows = {"a (1)": {"nerf": {"views": 6, "chamfer": 0.10}, "shipped": {"views": 8, "chamfer": 0.08}},
            "b (2)": {"nerf": {"views": 8, "chamfer": 0.05}, "shipped": {"views": 7, "chamfer": 0.051}},
            "c (3)": {"nerf": {"views": 8, "chamfer": 0.05}, "shipped": {"views": 8, "chamfer": 0.07}}}
    text = geometry_stage.table(rows, ["shipped"])
    assert "| a (1) | 6 / 8, 0.100 | 8 / 8, 0.080 |" in text
    assert "| **mean** | 7.3 / 8, 0.067 | 7.7 / 8, 0.067 |" in text
    assert text.rstrip().endswith("| — | 1 / 1 |")
