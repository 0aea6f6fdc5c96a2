"""The text-to-3D system's own plumbing: optimizer groups per module, and the guidance's state in checkpoints."""
import pytest
import torch

from tests.tiny_models import build_tiny_embedded_folder
from ui3d.config import load_config, parse_structured, stage_block
from ui3d.systems.text_to_3d import TextTo3DSystem
from ui3d.teachers.loader import load_teacher


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return load_teacher(str(build_tiny_embedded_folder(tmp_path_factory.mktemp("emb"))))


def make_system(teacher, tmp_path, *overrides):
    cfg = load_config("uniinstruct-fkl.yaml", ["prompt=a red vase", "system.guidance.real_pool_size=2",
                                               "system.guidance.real_sampling_steps=2",
                                               f"system.guidance.real_pool_cache_dir={tmp_path}/pool",
                                               f"system.prompt_processor.cache_dir={tmp_path}/text",
                                               *overrides]).cfg
    block = stage_block(cfg, "nerf").system
    return TextTo3DSystem(parse_structured(TextTo3DSystem.Config, block), teacher, tmp_path / "save")


def test_optimizer_params_give_modules_their_own_arguments(teacher, tmp_path):
    system = make_system(teacher, tmp_path, "system.optimizer.lr=0.01",
                         "system.optimizer.params={geometry.density_network: {lr: 0.001}}")
    optimizer = system.configure_optimizers()
    density = {id(p) for p in system.geometry.density_network.parameters()}
    groups = optimizer.param_groups
    assert {id(p) for p in groups[0]["params"]} == density and groups[0]["lr"] == 0.001
    rest = {id(p) for p in groups[1]["params"]}
    assert groups[1]["lr"] == 0.01 and not rest & density
    assert {id(p) for p in system.geometry.encoding.parameters()} <= rest
    guidance = {id(p) for g in system.guidance.trainable_parameters() for p in g["params"]}
    assert guidance == {id(p) for g in groups[2:] for p in g["params"]}


def test_optimizer_params_naming_no_module_is_a_clear_error(teacher, tmp_path):
    system = make_system(teacher, tmp_path, "system.optimizer.params={geometry.densty_network: {lr: 0.001}}")
    with pytest.raises(ValueError, match="geometry.densty_network"):
        system.configure_optimizers()


def test_checkpoints_carry_the_guidance_state_under_its_own_names(teacher, tmp_path):
    kw = ("system.guidance.normalize_ratio=true", "system.guidance.ratio_gradient=none")
    system = make_system(teacher, tmp_path, *kw)
    with torch.no_grad():
        for p in system.guidance.head.parameters():
            p.add_(1.0)
    system.guidance.objective.normalizer.state["r_sum"] += 2.0
    checkpoint = {}
    system.on_save_checkpoint(checkpoint)
    assert "disc.net.0.weight" in checkpoint["guidance_state"] and "objective.r_sum" in checkpoint["guidance_state"]
    fresh = make_system(teacher, tmp_path, *kw)
    fresh.on_load_checkpoint(checkpoint)
    for key, value in system.guidance.state_dict().items():
        torch.testing.assert_close(fresh.guidance.state_dict()[key], value, msg=key)


def test_checkpoints_from_before_stable_names_still_load(teacher, tmp_path):
    system = make_system(teacher, tmp_path)
    old = {"guidance": {f"{g}.{i}": p.detach() + 1.0 for g, group in enumerate(system.guidance.trainable_parameters())
                        for i, p in enumerate(group["params"])}}
    fresh = make_system(teacher, tmp_path)
    fresh.on_load_checkpoint(old)
    for g, group in enumerate(fresh.guidance.trainable_parameters()):
        for i, p in enumerate(group["params"]):
            torch.testing.assert_close(p.detach(), old["guidance"][f"{g}.{i}"])
