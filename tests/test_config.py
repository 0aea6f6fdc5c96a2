"""Config checking against registered parts' Config dataclasses, stage merging, run directories."""
from dataclasses import dataclass, field

import pytest
from omegaconf import OmegaConf

from ui3d import register
from ui3d.config import ConfigError, load_config, stage_block, stage_names
from ui3d.registry import RegistryError, find
from ui3d.run import make_run_dir, run_dir_for


@register("test-toy-guidance")
class ToyGuidance:
    @dataclass
    class Config:
        guidance_scale: float = 7.5
        """CFG scale."""
        divergence: str = "fkl"


@register("test-toy-system")
class ToySystem:
    @dataclass
    class Config:
        prompt_processor: dict = field(default_factory=dict)
        guidance_type: str = ""
        guidance: dict = field(default_factory=dict)


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


BASE = """
name: toy
system_type: test-toy-system
system:
  prompt_processor:
    prompt: a mug
  guidance_type: test-toy-guidance
  guidance:
    guidance_scale: 5.0
stages:
  one: {trainer: {max_steps: 10}}
  two:
    system: {guidance: {divergence: rkl}}
    trainer: {max_steps: 20}
"""


def test_an_unregistered_part_type_is_refused_with_the_closest_names(tmp_path):
    with pytest.raises(ConfigError, match="unknown system_type 'test-toy-sistem' on the command line. Did you mean "
                                          "'test-toy-system'"):
        load_config(write(tmp_path, BASE), ["system_type=test-toy-sistem"])
    with pytest.raises(ConfigError, match="(?s)unknown guidance_type 'sd' in .*c.yaml:7.*registered: .*uniinstruct"):
        load_config(write(tmp_path, BASE.replace("guidance_type: test-toy-guidance", "guidance_type: sd")))


def test_registered_part_blocks_are_checked_inside_registered_ones(tmp_path):
    load_config(write(tmp_path, BASE))
    with pytest.raises(ConfigError, match="'system.guidance.guidance_scal'.*Did you mean 'guidance_scale'"):
        load_config(write(tmp_path, BASE), ["system.guidance.guidance_scal=3"])
    with pytest.raises(ConfigError, match="bad value for 'system.guidance.guidance_scale'"):
        load_config(write(tmp_path, BASE), ["system.guidance.guidance_scale=high"])


def test_stage_overrides_are_checked_and_merged(tmp_path):
    with pytest.raises(ConfigError, match="'stages.two.system.guidance.divergense'"):
        load_config(write(tmp_path, BASE.replace("divergence: rkl", "divergense: rkl")))
    cfg = load_config(write(tmp_path, BASE), ["steps=15", "prompt=a blue mug"]).cfg
    assert stage_names(cfg) == ["one", "two"]
    one, two = stage_block(cfg, "one"), stage_block(cfg, "two")
    assert (one.trainer.max_steps, two.trainer.max_steps) == (10, 15)  # steps= caps every stage
    assert "divergence" not in one.system.guidance
    assert two.system.guidance.divergence == "rkl" and two.system.guidance.guidance_scale == 5.0
    assert two.system.prompt_processor.prompt == "a blue mug"


def test_config_without_stages_has_one_main_stage(tmp_path):
    cfg = load_config(write(tmp_path, "name: x\ntrainer: {max_steps: 7}\n")).cfg
    assert stage_names(cfg) == ["main"] and stage_block(cfg, "main").trainer.max_steps == 7


def test_run_directory_holds_the_resolved_config(tmp_path):
    cfg = load_config(write(tmp_path, BASE), [f"exp_root_dir={tmp_path}/out", "seed=3"]).cfg
    assert run_dir_for(cfg, "T") == tmp_path / "out" / "toy" / "a_mug@T"
    run_dir = make_run_dir(cfg)
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert saved.seed == 3 and saved.system.prompt_processor.prompt == "a mug"


def test_registry_find_and_misses():
    assert find("test-toy-guidance") is ToyGuidance
    with pytest.raises(RegistryError, match="Did you mean 'test-toy-guidance'"):
        find("test-toy-guidanse")
    with pytest.raises(RegistryError, match="registered twice"):
        register("test-toy-guidance")(type("Other", (), {}))


def test_a_converting_stage_inherits_the_encoding_of_the_geometry_it_converts():
    cfg = load_config("uniinstruct-fkl.yaml", ["system.geometry.encoding=hashgrid", "system.geometry.hash_levels=4",
                                               "stages.texture.system.geometry.mlp_hidden=32"]).cfg
    geometry, texture = (stage_block(cfg, name).system.geometry for name in ("geometry", "texture"))
    assert (geometry.encoding, geometry.hash_levels, texture.encoding, texture.hash_levels) == ("hashgrid", 4) * 2
    assert texture.mlp_hidden == 32 and "mlp_hidden" not in geometry  # a stage's own value wins
    assert "density_bias" not in geometry  # the NeRF's other keys stay behind
