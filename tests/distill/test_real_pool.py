"""One real-image pool for 2D distillation and text-to-3D guidance: the same fingerprint (a digest of the
teacher's weights and the pool settings), the same cache files, the same invalidation when a teacher changes."""
import torch

from tests.tiny_models import build_tiny_embedded_folder, build_tiny_unet_folder
from ui3d import files
from ui3d.distill.real_pool import REAL_POOL_CACHE_DIR, RealPool
from ui3d.distill2d.teachers import UNetTeacher
from ui3d.guidance.fake_score import FakeScore
from ui3d.teachers.loader import load_teacher


def test_2d_and_3d_pools_share_the_cache_and_a_changed_weight_invalidates_both(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the 2D teachers cache under the default folder
    cache = tmp_path / REAL_POOL_CACHE_DIR
    folder = build_tiny_unet_folder(tmp_path / "unet")
    cfg = UNetTeacher.Config(pretrained_model_name_or_path=str(folder), real_pool=3, real_steps=2)
    teacher2d, teacher3d = UNetTeacher(cfg), load_teacher(str(build_tiny_embedded_folder(tmp_path / "emb")))

    def pools() -> tuple[torch.Tensor, torch.Tensor]:
        teacher2d._pool = None  # a new run: read from the cache or drawn again
        x2d, _ = teacher2d.real(2, torch.Generator().manual_seed(0))
        return x2d, RealPool(teacher3d, size=2, steps=2, cache_dir=cache).images("a red vase")

    before = pools()
    written = sorted(cache.glob("*.pt"))
    assert len(written) == 2  # one file per pool, the same format for both
    for path in written:
        entry = files.torch_load(path)
        assert set(entry) == {"key", "samples", "conditions"} and entry["samples"].shape[0] in (2, 3)
    again = pools()  # unchanged teachers: the same files, the same samples
    assert sorted(cache.glob("*.pt")) == written and all(torch.equal(a, b) for a, b in zip(before, again))

    fake = FakeScore(teacher3d, rank=2)  # a fake score's LoRA on the teacher UNet is not the teacher's weights
    assert pools() and sorted(cache.glob("*.pt")) == written
    with torch.no_grad():  # a retrained teacher: one weight of each moves a little
        teacher2d.net.unet.conv_out.bias.add_(1e-3)
        teacher3d.unet.conv_out.bias.add_(1e-3)
    pools()
    assert len(list(cache.glob("*.pt"))) == 4  # both pools drawn again, beside the stale files
    fake.unet.delete_adapters("ui3d_fake_score")


def test_a_text_teachers_pool_follows_its_text_encoder_too(tmp_path):
    """The prompts' embeddings come from the text encoder: a retrained encoder must not reuse stale samples."""
    from ui3d.distill2d.teachers import TextTeacher

    folder = build_tiny_embedded_folder(tmp_path / "emb")
    teacher = TextTeacher(TextTeacher.Config(pretrained_model_name_or_path=str(folder), prompts=["a red vase"]))
    before = RealPool(teacher, size=2, steps=1).fingerprint()
    with torch.no_grad():
        next(teacher.teacher.text_encoder.parameters()).add_(1e-3)
    assert RealPool(teacher, size=2, steps=1).fingerprint() != before
