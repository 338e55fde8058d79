"A run mixing vocabularies (two tiny tokenizers and a 262,144-row Gemma-3): report through the command line, per-group aligned sections, steps, a subset."
import re
import json
import pandas as pd
import pytest

from reasoning_entropy.store import RunStore
from helpers import cli, matching

NAMES, STEPS = ["A", "B", "C", "D", "E"], ["1", "2", "4", "10", "20"]


def csv(run, name):
    return pd.read_csv(RunStore(run).table_path(name))


@pytest.fixture(scope="module")
def mixed(tiny_pair, tmp_path_factory):
    """A, B: Qwen2 with one tokenizer; C, D: Llama with another (a different special token); E: Gemma-3 with A's tokenizer
    and a 262,144-row output layer. Three vocabulary groups: {A, B}, {C, D}, {E}; steps 1, 2, 4, 10, 20."""
    from reasoning_entropy.testing import make_tiny_checkpoint
    d = tmp_path_factory.mktemp("mixed")
    c = make_tiny_checkpoint(d / "c", "llama", seed=3, extra_tokens=("<extra>",))
    dd = make_tiny_checkpoint(d / "d", "llama", seed=4, extra_tokens=("<extra>",))
    e = make_tiny_checkpoint(d / "e", "gemma3", seed=5, vocab_size=262_144)
    paths = [*tiny_pair, c, dd, e]
    run = d / "run"
    r = cli("report", "--model_paths", *paths, "--model_names", *NAMES, "--steps", *STEPS, "--num_examples", 4,
            "--max_new_tokens", 8, "--output_dir", run)
    assert r.returncode == 0, r.stderr[-3000:]
    return paths, run


def test_report_covers_each_vocabulary_group(mixed):
    _, run = mixed
    groups = csv(run, "vocabulary_groups")
    assert groups.checkpoints.tolist() == ["A, B", "C, D", "E"]
    assert groups.vocab_size.tolist() == [320, 320, 262_144]
    assert groups.sequences.tolist() == ["A's generations", "C's generations", "E's generations"]
    # the aligned tables compare within each group, against the group's first checkpoint; E (alone) is in none
    for name in ("aligned_top_overlap", "aligned_change_by_percentile"):
        t = csv(run, name)
        assert sorted(set(zip(t.group, t.model, t.ref_model))) == [(1, "B", "A"), (2, "D", "C")], name
        assert sorted(set(zip(t.model, t.training_step, t.ref_training_step))) == [("B", 2, 1), ("D", 10, 4)], name
    figs = sorted(p.stem for p in matching(RunStore(run).figure_path("aligned*")))
    assert figs == ["aligned_group1", "aligned_group2"]
    html = RunStore(run).report_html.read_text()
    assert "there is no between-checkpoint aligned comparison for it" in html and "Vocabulary group 3" in html
    alts = re.findall(r'alt="(Figure: [^"]*on identical sequences[^"]*)"', html)  # each group's figure names its own checkpoints
    assert alts == [f"Figure: Forking positions and entropy change on identical sequences (Vocabulary group {g} ({m}) scored {m[0]}'s generations)"
                    for g, m in ((1, "A, B"), (2, "C, D"))], alts
    # the scoring state says what each group scored; every checkpoint is done on its group's sequences
    st = RunStore(run).scoring_state()
    assert [(g["models"], g["sequences"]) for g in st["groups"]] == [(["A", "B"], "A"), (["C", "D"], "C"), (["E"], "E")]
    fp = {m: g["fingerprint"] for g in st["groups"] for m in g["models"]}
    assert {m: d["fingerprint"] for m, d in st["done"].items()} == fp
    # sections on generations cover every checkpoint, with its training step
    s = csv(run, "entropy_summary")
    assert s.model.tolist() == NAMES and s.training_step.tolist() == [1, 2, 4, 10, 20]
    assert csv(run, "entropy_vs_accuracy")[["model", "training_step"]].values.tolist() == [[m, int(x)] for m, x in zip(NAMES, STEPS)]
    assert csv(run, "checkpoints").vocabulary_group.tolist() == [1, 1, 2, 2, 3]


def test_report_on_a_subset(mixed):
    "report --model_paths with two of the run's five checkpoints: only those two, nothing deleted, nothing scored again."
    paths, run = mixed
    scored = {p: p.stat().st_mtime_ns for p in RunStore(run).scored_dir.rglob("part-*.parquet")}
    r = cli("report", "--model_paths", paths[0], paths[2], "--model_names", "A", "C", "--steps", 1, 4,
            "--num_examples", 4, "--max_new_tokens", 8, "--output_dir", run)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("entropy_summary", "accuracy", "checkpoints", "share_below"):
        assert csv(run, name).model.tolist() == ["A", "C"], name
    assert csv(run, "distances")[["model", "ref_model"]].drop_duplicates().values.tolist() == [["C", "A"]]
    assert csv(run, "vocabulary_groups").checkpoints.tolist() == ["A", "C"]
    assert len(csv(run, "aligned_top_overlap")) == 0  # no group of two: the tables are empty, the figures gone
    assert not matching(RunStore(run).figure_path("aligned*"))
    html = RunStore(run).report_html.read_text()
    assert "not reported here: B, D, E" in html and html.count("there is no between-checkpoint aligned comparison for it") == 2
    assert RunStore(run).models == NAMES  # the run keeps every checkpoint
    assert {p: p.stat().st_mtime_ns for p in scored} == scored  # A and C kept their scores; B, D, E theirs
    nb = json.loads(RunStore(run).report_notebook.read_text())
    assert nb["metadata"]["papermill"]["parameters"]["models"] == ["A", "C"]
