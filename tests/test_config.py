"""Config checking against registered parts' Config dataclasses, stage merging, run directories."""
from dataclasses import dataclass, field

import pytest
from omegaconf import OmegaConf

from ui3d import register
from ui3d.config import CONFIG_DIR, ConfigError, _load_chain, load_config, stage_block, stage_names
from ui3d.registry import RegistryError, find
from ui3d.run import make_run_dir, run_dir_for


@register("test-toy-guidance")
class ToyGuidance:
    @dataclass
    class Config:
        guidance_scale: float = 7.5
        """CFG scale."""
        divergence: str = "fkl"


@register("test-toy-other-guidance")
class OtherToyGuidance:
    @dataclass
    class Config:
        steps: int = 1


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


def test_a_file_that_switches_a_part_type_replaces_the_block_it_inherits(tmp_path):
    (tmp_path / "base.yaml").write_text("name: toy\nsystem_type: test-toy-system\nsystem:\n"
                                        "  guidance_type: test-toy-guidance\n"
                                        "  guidance: {guidance_scale: 5.0, divergence: rkl}\n")
    same = load_config(write(tmp_path, "extends: base.yaml\nsystem: {guidance: {divergence: fkl}}\n")).cfg
    assert dict(same.system.guidance) == {"guidance_scale": 5.0, "divergence": "fkl"}
    other = load_config(write(tmp_path, "extends: base.yaml\nsystem:\n  guidance_type: test-toy-other-guidance\n"
                                        "  guidance: {steps: 3}\n")).cfg
    assert dict(other.system.guidance) == {"steps": 3}


SD_CONFIGS = sorted(p.name for p in (CONFIG_DIR / "sd").glob("*.yaml"))


@pytest.mark.parametrize("name", SD_CONFIGS)
def test_sd_configs_extend_the_cpu_ones_and_keep_their_own_teacher_scale_and_bounds(name):
    chain = _load_chain(CONFIG_DIR / "sd" / name)[1]
    assert any(path.resolve().parent == CONFIG_DIR.resolve() for path in chain), chain
    sd, cpu = load_config(f"sd/{name}").cfg, load_config(name).cfg
    teacher = "stabilityai/stable-diffusion-2-1-base"
    assert sd.system.guidance.pretrained_model_name_or_path == teacher
    assert sd.system.prompt_processor.pretrained_model_name_or_path == teacher
    assert sd.system.geometry.sphere_radius is None and cpu.system.geometry.sphere_radius == 0.5
    assert (sd.system.geometry.radius, sd.system.geometry.encoding) == (1.0, "hashgrid")
    assert sd.system.background_type == "neural-environment-map-background" and "color" not in sd.system.background
    assert sd.trainer.max_steps > cpu.trainer.max_steps and sd.data.width > cpu.data.width
    if "geometry" in sd.stages:  # SDS on normal maps with the material's and the data's own lighting
        geometry = stage_block(sd, "geometry")
        assert geometry.system.guidance_input == "comp_normal_vis" and not geometry.system.geometry.fix_texture
        assert geometry.data.light_sample_strategy == "dreamfusion"
        assert geometry.system.material.ambient_only_steps == 1000
        texture = stage_block(sd, "texture").system.optimizer
        assert texture.lr == 0.01 and texture.params["geometry.feature_network"].lr == 0.001
