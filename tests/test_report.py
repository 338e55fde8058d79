"The comparison report: CLI and papermill on the installed template, every section and figure, failing cells fail."
import re, json, shutil, subprocess, sys
from pathlib import Path
import pytest

from reasoning_entropy.store import RunStore
from helpers import cli, matching

SECTIONS = ["Entropy across checkpoints", "Key findings", "Contents", "Overview", "Length", "Answers and calibration", "Across training", "Distributions", "Steps", "Tokens", "Reasoning structure",
            "Between checkpoints", "Samples", "Aligned (teacher-forced)", "Token heatmap"]
FIGURES = ["entropy_hist_log", "low_entropy", "entropy_by_step", "entropy_by_position", "token_ranking", "forking_overlap",
           "think_vs_answer", "accuracy", "entropy_by_correctness", "entropy_vs_accuracy", "distances", "paired_differences", "aligned",
           "reliability", "quadrants", "entropy_fit", "trajectories"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def reported(tiny_pair, tmp_path_factory):
    "A report made through the command line on two tiny checkpoints."
    a, b = tiny_pair
    out = tmp_path_factory.mktemp("rep") / "run"
    r = cli("report", "--model_paths", a, b, "--model_names", "Checkpoint_1", "Checkpoint_2", "--num_examples", 6,
            "--max_new_tokens", 12, "--output_dir", out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith(f"report: {RunStore(out).report_html}")
    return out


def check_html(html: str, n_models: int):
    for s in SECTIONS: assert f">{s}<" in html or f"{s}</h" in html, s
    # every figure is embedded as an image (no links to files)
    n_png = html.count("data:image/png;base64,")
    assert n_png >= len(FIGURES), n_png
    assert "<img src=\"figures/" not in html
    assert html.count('class="re-tok') > 0                       # the token heatmap
    assert "How to read it:" in html
    assert "Traceback" not in html and 'data-mime-type="application/vnd.jupyter.stderr"' not in html  # no error, no warning


VERDICTS = {"beyond prompt sampling; checkpoint noise not measured", "beyond prompt sampling", "beyond chance placement", "not distinguishable",
            "too few to test"}

def test_report_cli(reported):
    st = RunStore(reported)
    html = st.report_html.read_text()
    check_html(html, 2)
    assert sorted(p.stem for p in matching(st.figure_path("*"))) == sorted(FIGURES)
    assert "This run has one sample per prompt, so pass@1 is the accuracy above" in html     # the sample section says so
    assert not st.table_path("pass_at_k").exists()
    # the statistics' tables: every estimate with its n, every between-checkpoint statistic with its null and verdict
    import pandas as pd
    cols = {"distances": ["model", "ref_model", "wasserstein", "wasserstein_floor", "wasserstein_p", "ks", "ks_floor", "ks_p", "p_adj",
                          "noise_p_adj", "verdict"],
            "aligned_change_by_percentile": ["bin", "n", "n_prompts", "ref_entropy_mean", "entropy_mean", "delta", "ci_low", "ci_high", "p",
                                             "p_adj", "noise_p_adj", "verdict"],
            "accuracy_change": ["model", "ref_model", "n_prompts", "n_gained", "n_lost", "diff", "ci_low", "ci_high", "p", "p_adj", "verdict"],
            "accuracy": ["model", "n", "n_correct", "accuracy", "ci_low", "ci_high"],
            "paired_differences": ["model", "ref_model", "n_prompts", "mean_diff", "ci_low", "ci_high", "p", "p_adj", "noise_p_adj", "verdict"],
            "aligned_top_overlap": ["overlap", "chance", "floor", "p", "p_adj", "verdict"],
            "calibration": ["model", "signal", "auroc", "ci_low", "ci_high", "n"],
            "truncation": ["model", "n", "n_truncated", "share", "warn"],
            "length_robust": ["model", "pooled_share_below", "share_below", "share_ci_low", "share_ci_high", "n_looping", "n_prompts"]}
    for name, want in cols.items():
        t = pd.read_csv(st.table_path(name))
        assert set(want) <= set(t.columns), (name, list(t.columns))
        assert len(t), name
        if "verdict" in t: assert set(t.verdict) <= VERDICTS, (name, set(t.verdict))
    change = pd.read_csv(st.table_path("aligned_change_by_percentile"))       # held-out bins: no row implies a negative entropy
    assert (change.ref_entropy_mean + change.delta >= -1e-12).all() and (change.entropy_mean >= 0).all()
    for old in ("accuracy_by_model", "distribution_distances", "aligned_change_by_decile"):
        assert not st.table_path(old).exists(), old
    # the report leads with its findings, then the contents; every displayed table is saved under tables/
    heads = re.findall(r"<h2[^>]*>(.*?)<", html)
    assert heads[:3] == ["Key findings", "Contents", "Overview"], heads[:3]
    key = html[html.index(">Key findings<"):html.index(">Contents<")]
    assert "Mean token entropy went from" in key and ("beyond prompt sampling; checkpoint noise not measured" in key or "not distinguishable" in key), key[:2000]
    saved = {p.stem for p in matching(st.table_path("*"))}
    shown = re.findall(r'<table [^>]*id="T_', html)
    assert len(shown) <= len(saved) and len(shown) >= 15, (len(shown), sorted(saved))
    nb = json.loads(st.report_notebook.read_text())
    assert nb["metadata"]["papermill"]["parameters"]["run_dir"] == str(reported.resolve())
    # inputs are hidden in the HTML
    assert "read_tokens()" not in html


def test_report_run_dir_and_papermill_cli(reported, tmp_path):
    "papermill straight on the installed template, with -y parameters, on an existing run."
    from reasoning_entropy.report import template_path
    tpl = template_path()
    import reasoning_entropy
    assert tpl.exists() and tpl == Path(reasoning_entropy.__file__).parent / "templates" / "comparison_report.ipynb"
    out = tmp_path / "pm.ipynb"
    r = subprocess.run([sys.executable, "-m", "papermill", str(tpl), str(out), "-k", "python3", "--no-progress-bar",
                        "-y", f"run_dir: {reported}\nheatmap_prompts: 2\nmin_count: 1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    nb = json.loads(out.read_text())
    assert nb["metadata"]["papermill"]["parameters"]["heatmap_prompts"] == 2
    from reasoning_entropy.report import export_html
    check_html(export_html(out).read_text(), 2)
    # and the command on the existing run directory
    r = cli("report", "--run_dir", reported)
    assert r.returncode == 0, r.stderr[-3000:]


def test_report_help_lists_noise_pair(capsys):
    "`report --help` shows --noise_pair, its two names and what it does."
    from reasoning_entropy.cli import main
    with pytest.raises(SystemExit) as e: main(["report", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--noise_pair NAME NAME" in out
    assert ("two checkpoints that differ by noise only (two seeds of one step, or a checkpoint and a copy): every between-checkpoint "
            "verdict gets a second floor, checkpoint noise; repeat for more pairs") in " ".join(out.split())


def test_noise_pair_reaches_the_report(reported, tmp_path):
    "--noise_pair on an existing run: the pair is the template's `noise_pairs`; a name outside the run is refused before anything runs."
    run = tmp_path / "run"; shutil.copytree(reported, run)
    r = cli("report", "--run_dir", run, "--noise_pair", "Checkpoint_1", "Checkpoint_2")
    assert r.returncode == 0, r.stderr[-3000:]
    st = RunStore(run)
    assert json.loads(st.report_notebook.read_text())["metadata"]["papermill"]["parameters"]["noise_pairs"] == [["Checkpoint_1", "Checkpoint_2"]]
    import pandas as pd
    for name in ("paired_differences", "distances", "accuracy_change"):        # every between-checkpoint verdict has its second floor
        t = pd.read_csv(st.table_path(name))
        assert t.noise_p_adj.notna().all() and not t.verdict.str.contains("checkpoint noise not measured").any(), (name, t.verdict.tolist())
    before = st.report_html.stat().st_mtime_ns
    r = cli("report", "--run_dir", run, "--noise_pair", "Checkpoint_1", "Z")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == (
        "reasoning-entropy report: error: --noise_pair: 'Z' is not a checkpoint of the run (Checkpoint_1, Checkpoint_2)")
    assert st.report_html.stat().st_mtime_ns == before

def test_failing_cell_fails_the_command(reported, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(reported, broken)
    st = RunStore(broken)
    for f in (st.report_html, st.report_notebook): f.unlink()
    part = next(st.tokens_dir.rglob("part-*.parquet"))
    part.write_bytes(b"x" * part.stat().st_size)  # unreadable, at its recorded size: only `verify`'s checksum would see it, so the report reads it
    r = cli("report", "--run_dir", broken)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("reasoning-entropy report: error: report cell ")
    assert not st.report_html.exists()


def test_report_opens_in_chromium(chromium, reported):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(RunStore(reported).report_html.as_uri())
        page.wait_for_load_state("load")
        n = page.evaluate("document.images.length")
        broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length")
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        headings = page.evaluate("Array.from(document.querySelectorAll('h1,h2')).map(h => h.textContent.replace('¶','').trim())")
        height, width = page.evaluate("[document.documentElement.scrollHeight, document.documentElement.scrollWidth]")
        no_alt = page.evaluate("Array.from(document.images).filter(i => !i.alt).length")
        align = page.evaluate("getComputedStyle(document.querySelector('.re-tok').closest('td')).textAlign")
        title = page.title()
        browser.close()
    assert n >= len(FIGURES) and broken == 0 and no_alt == 0
    assert height <= 13_000 and width <= 1200, (height, width)  # reads in one sitting (three sections since 12,000: rollouts, mechanism, confidence); no table wider than the page
    assert align == "left" and title == f"Entropy report: {reported.name}"
    for s in SECTIONS: assert s in headings
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
