"Shared fixtures: tiny random checkpoints and a small demo-like series, built locally (no downloads)."
import os
from pathlib import Path
import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory):
    "Two tiny random Qwen2 checkpoints sharing one tokenizer."
    from reasoning_entropy.testing import make_tiny_checkpoint
    d = tmp_path_factory.mktemp("tiny")
    return make_tiny_checkpoint(d / "ckpt-1", seed=1), make_tiny_checkpoint(d / "ckpt-2", seed=2)
