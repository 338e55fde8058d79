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


# the demo's own build, reduced (same code path, fewer and smaller steps) so tests stay fast
REDUCED_DEMO = dict(steps=60, batch_size=16, hidden_size=64, num_layers=2)


@pytest.fixture(scope="session")
def demo_checkpoints(tmp_path_factory):
    "Paths of a reduced demo series: demo-checkpoint-1-of-10, -2-, -4-, -10-of-10 (Qwen2, the demo tokenizer)."
    from reasoning_entropy.demo import demo_series
    return [p for _, p in demo_series(tmp_path_factory.mktemp("demo-series"), progress=False, **REDUCED_DEMO)]
