"Shared fixtures: tiny random checkpoints and a small demo-like series, built locally (no downloads)."
import os, shutil
from pathlib import Path
import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
pytest.register_assert_rewrite("helpers")  # tests/helpers.py (the CLI helper the test files share): its asserts explain themselves


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


def _ci() -> bool:
    "True when the environment variable CI is set (to anything but '', 0, false or no), as CI services and .ci/run do."
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def chromium():
    """Path of Debian's chromium (and playwright importable) for the browser tests.
    Absent: the test skips on a developer machine, and FAILS when CI is set, so CI never passes by skipping them."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try: import playwright.sync_api  # noqa: F401
    except ImportError: missing = "the python package playwright is not installed (pip install -e '.[dev]')"
    else: missing = None if path else "Debian's chromium is not on PATH (apt-get install chromium; .ci/run installs it)"
    if missing is None: return path
    if _ci(): pytest.fail(f"browser test under CI={os.environ['CI']!r}: {missing}", pytrace=False)
    pytest.skip(missing)
