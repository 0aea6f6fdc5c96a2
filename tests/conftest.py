"""Tests never reach a model hub: everything is built in memory or shipped in the repo."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
