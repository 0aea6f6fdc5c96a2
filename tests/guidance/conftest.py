"""Tiny random teachers for the guidance tests, built once per session (nothing is downloaded)."""
from __future__ import annotations

import pytest

from tests.tiny_models import build_tiny_embedded_folder, build_tiny_sd_folder
from ui3d.teachers.loader import load_teacher


@pytest.fixture(scope="session")
def embedded_teacher(tmp_path_factory):
    """Pixel-space teacher in the embedded layout (32×32, word-level tokenizer)."""
    return load_teacher(str(build_tiny_embedded_folder(tmp_path_factory.mktemp("embedded"))))


@pytest.fixture(scope="session")
def sd_teacher(tmp_path_factory):
    """Latent teacher shaped like Stable Diffusion (VAE, 16 px images, CLIP tokenizer)."""
    words = ("a", "vase", "red", "side", "front", "view")
    return load_teacher(str(build_tiny_sd_folder(tmp_path_factory.mktemp("sd"), words)))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One real-pool cache for the session: teacher samples are drawn once per prompt."""
    return tmp_path_factory.mktemp("real_pool")
