"Runs that travel without their checkpoints (`report --run_dir` on a copy), and the Trainer callback given `tokenizer=` (issue 27, items 6 and 7)."
import re, shutil
from pathlib import Path
import pytest

from reasoning_entropy.store import RunStore
from reasoning_entropy.report_items import ITEMS, SECTIONS
from helpers import cli, tiny_trainer_parts

ALIGNED = {n for n, i in ITEMS.items() if {"scored", "groups"} & set(i.needs)}  # the items that need teacher-forced scores


@pytest.fixture(scope="module")
def travelled(tiny_pair, tmp_path_factory):
    """Two runs of the same two checkpoints, copied elsewhere, whose checkpoints are then gone: one scored, one not.
    Returns (scored copy, unscored copy, {name: checkpoint path the runs record})."""
    from reasoning_entropy.compare import compare
    from reasoning_entropy.score import score_run
    base = tmp_path_factory.mktemp("travel").resolve()
    cks = [shutil.copytree(p, base / "ck" / Path(p).name) for p in tiny_pair]
    made = base / "made"
    compare(cks, output_dir=made, num_examples=4, max_new_tokens=8)
    shutil.copytree(made, base / "unscored")
    score_run(made, progress=False)
    shutil.copytree(made, base / "scored")
    shutil.rmtree(base / "ck")  # the laptop: the manifest's checkpoint paths do not exist here
    paths = {c.name: c.path for c in RunStore(base / "scored").checkpoints}
    assert paths == {p.name: str(p) for p in cks} and not any(Path(p).exists() for p in paths.values())
    return base / "scored", base / "unscored", paths


def sections(html: str) -> dict:
    "The HTML of each h2 section of the report, by heading."
    parts = re.split(r"<h2[^>]*>(.*?)<", html)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def reports(run: Path) -> tuple[set, set]:
    "(table names, figure names) the report wrote."
    st = RunStore(run)
    return {p.stem for p in st.table_path("x").parent.glob("*.csv")}, {p.stem for p in st.figure_path("x").parent.glob("*.png")}


def test_scored_run_reports_without_its_checkpoints(travelled):
    "A complete scored run, its checkpoints gone: exit 0, every section and the aligned ones from the stored scores, nothing opened."
    run, _, _ = travelled
    st = RunStore(run)
    state, parts = st.scoring_state_path.read_bytes(), {p: p.stat().st_mtime_ns for p in st.scored_dir.rglob("*.parquet")}
    r = cli("report", "--run_dir", run, log_level="INFO")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == f"report: {st.report_html}"
    said = [l.split(" reasoning_entropy.report: ", 1)[1] for l in r.stderr.splitlines() if " reasoning_entropy.report: " in l]
    assert said[0] == "report: checkpoints not reachable from here (ckpt-1, ckpt-2); the stored scores are used", said
    assert "Traceback" not in r.stderr and " WARNING reasoning_entropy" not in r.stderr
    # the scores were read, not remade: the checkpoints were never opened (they are not there to open)
    assert st.scoring_state_path.read_bytes() == state and {p: p.stat().st_mtime_ns for p in st.scored_dir.rglob("*.parquet")} == parts
    html = st.report_html.read_text()
    got = sections(html)
    assert set(SECTIONS) <= set(got), set(SECTIONS) - set(got)
    assert "not reachable from here" not in html and "This run has no teacher-forced scores" not in html
    tables, figures = reports(run)
    assert {"aligned_top_overlap", "aligned_change_by_percentile"} <= tables and "aligned" in figures
    assert got["Aligned (teacher-forced)"].count("data:image/png;base64,") == 1


def test_unscored_run_reports_why_aligned_sections_are_empty(travelled):
    "A complete run without scores, its checkpoints gone: exit 0, one log line, every other section, the aligned ones saying why."
    scored, run, paths = travelled
    r = cli("report", "--run_dir", run)
    assert r.returncode == 0, r.stderr[-3000:]
    st = RunStore(run)
    assert r.stdout.strip().splitlines()[-1] == f"report: {st.report_html}"
    ours = [l for l in r.stderr.splitlines() if "reasoning_entropy" in l]
    assert len(ours) == 1 and ours[0].endswith(
        f" WARNING reasoning_entropy.report: report: aligned scores are missing and the checkpoints (ckpt-1: `{paths['ckpt-1']}`, "
        f"ckpt-2: `{paths['ckpt-2']}`) are not reachable from here: run `reasoning-entropy score --run_dir {run}` where they are, "
        "then `report` again"), ours
    assert "Traceback" not in r.stderr and not st.scored_dir.exists() and st.scoring_state() == {}
    html = st.report_html.read_text()
    got = sections(html)
    assert set(SECTIONS) <= set(got), set(SECTIONS) - set(got)
    why = (f"the checkpoints (ckpt-1: <code>{paths['ckpt-1']}</code>, ckpt-2: <code>{paths['ckpt-2']}</code>) are not reachable "
           f"from here: run <code>reasoning-entropy score --run_dir {st.dir}</code> where they are, then <code>report</code> again.")
    assert f"This run has no teacher-forced scores, and {why}" in got["Aligned (teacher-forced)"], got["Aligned (teacher-forced)"][:2000]
    assert f"This run has no teacher-forced scores, so its vocabulary groups are not known yet, and {why}" in got["Vocabulary groups"]
    assert "data:image/png;base64," not in got["Aligned (teacher-forced)"]
    # every item that needs only the stored data is there, as in the scored run's report
    tables, figures = reports(run)
    full_tables, full_figures = reports(scored) if RunStore(scored).report_html.exists() else (None, None)
    assert not tables & ALIGNED and "aligned" not in figures
    if full_tables is not None: assert (tables, figures) == (full_tables - ALIGNED, full_figures - ALIGNED)
    assert {"entropy_summary", "checkpoints", "distances", "telling_prompts"} <= tables and "entropy_hist_log" in figures


def test_callback_takes_the_tokenizer(tmp_path):
    "A Trainer made without processing_class: the callback given tokenizer= probes each save; without either, one line before training."
    from transformers import AutoTokenizer, Trainer
    from reasoning_entropy.callback import EntropyProbeCallback
    from reasoning_entropy.errors import InputError
    tok, model, train, args = tiny_trainer_parts(tmp_path, n_prompts=4, length=48, batch=1, max_steps=2)
    bare = Trainer(model=model, args=args, train_dataset=train, callbacks=[EntropyProbeCallback(tmp_path / "none")])
    assert bare.processing_class is None
    with pytest.raises(InputError) as e: bare.train()
    assert str(e.value) == ("EntropyProbeCallback: the Trainer has no tokenizer; pass processing_class=tokenizer to the Trainer, "
                            "or tokenizer=tokenizer to EntropyProbeCallback")
    assert not (tmp_path / "none").exists() and not (tmp_path / "out" / "checkpoint-2").exists()
    run = tmp_path / "probe_run"
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      callbacks=[EntropyProbeCallback(run, tokenizer=tok, num_examples=2, max_new_tokens=4)])
    assert trainer.processing_class is None
    trainer.train()
    st = RunStore(run)
    assert st.steps == {"step-2": 2} and st.is_complete()
    assert AutoTokenizer.from_pretrained(tmp_path / "out" / "checkpoint-2").get_vocab() == tok.get_vocab()  # saved with the checkpoint
    parts = sorted(p.name for p in st.generations_dir.rglob("*.parquet"))
    # the checkpoint now reads like any other: compare on the Trainer's output finds the callback's run complete
    r = cli("compare", "--model_paths", tmp_path / "out", "--output_dir", run, "--num_examples", 2, "--max_new_tokens", 4)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in st.generations_dir.rglob("*.parquet")) == parts
