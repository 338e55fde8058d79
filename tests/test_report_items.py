"The report is its registry: every file a report writes belongs to a registered item, items are defined nowhere else, and the template only loops and displays."
import json, re
from pathlib import Path
import pytest
import reasoning_entropy
from reasoning_entropy.report import TEMPLATE_LINES, execute_report, export_html, template_path
from reasoning_entropy.report_items import ITEMS, NEEDS, report_run
from reasoning_entropy.store import RunStore
from reasoning_entropy.testing import synthetic_run_dir

PACKAGE = Path(reasoning_entropy.__file__).parent


def test_items_are_defined_only_in_the_registry():
    "No module but the registry defines a report item or a reading note (the old per-module READ_ME dicts are gone)."
    for f in sorted(PACKAGE.glob("*.py")):
        if f.name in ("report_items.py", "_modidx.py"): continue
        text = f.read_text()
        for word in ("ReportItem(", "register(ReportItem", "READ_ME", "FIGURE_ANALYSES"):
            assert word not in text, f"{f.name} defines report content ({word!r}): register it in report_items instead"


def template_code() -> list[str]:
    nb = json.loads(template_path().read_text())
    return [l for c in nb["cells"] if c["cell_type"] == "code" for l in "".join(c["source"]).splitlines() if l.strip()]


def test_template_only_loops_and_displays():
    code = template_code()
    assert len(code) <= TEMPLATE_LINES, f"the template holds {len(code)} lines of code (at most {TEMPLATE_LINES})"
    text = "\n".join(code)
    imported = set(re.findall(r"from reasoning_entropy\.(\w+) import", text))
    assert imported == {"report_items", "report_page"}, imported  # nothing of the analyses, the store or the figures
    assert "for section in SECTIONS" in text


@pytest.fixture(scope="module")
def sampled_report(tmp_path_factory):
    "The template executed on a synthetic run of three checkpoints with three samples per prompt (no model is loaded)."
    run = synthetic_run_dir(tmp_path_factory.mktemp("items") / "run", n_prompts=16, models=["ck_1", "ck_2", "ck_3"], samples=3, max_steps=24)
    html = export_html(execute_report(run, dict(heatmap_prompts=2)))
    return RunStore(run), html.read_text()


def test_every_file_is_an_item_and_every_item_is_shown(sampled_report):
    store, html = sampled_report
    run = report_run(store.dir)
    due = {n for n, i in ITEMS.items() if not run.unmet(i.needs)}
    tables = {p.stem for p in store.table_path("x").parent.glob("*.csv")}
    figures = {p.stem for p in store.figure_path("x").parent.glob("*.png")}
    assert tables == {n for n in due if ITEMS[n].table}, sorted(tables ^ {n for n in due if ITEMS[n].table})
    assert figures == {n for n in due if ITEMS[n].figure and n != "aligned"}, sorted(figures)  # nothing scored here: no aligned figure
    assert {"pass_at_k", "majority_vote", "sample_entropy_spread", "entropy_correct_vs_incorrect"} <= tables  # three samples
    assert not run.unmet(("samples", "graded")) and run.unmet(("scored",)) == ["scored"]
    assert NEEDS["scored"][1].split(":")[0] in html and "Aligned (teacher-forced)" in html  # the section says why its items are left out


def test_the_page_reads_in_one_sitting(sampled_report):
    store, html = sampled_report
    assert re.search(r"<title>Entropy report: run</title>", html)
    imgs = re.findall(r"<img [^>]*>", html)
    assert len(imgs) >= 15 and all(re.search(r'alt="Figure: [^"]+"', i) for i in imgs), [i[:80] for i in imgs if 'alt="Figure' not in i]
    assert "&lt; 0.001" in html
    assert "&lt;think&gt;" in html  # a reading note that quotes <think> shows it
    heads = re.findall(r"<h2[^>]*>(.*?)<", html)
    assert heads[:3] == ["Key findings", "Contents", "Overview"], heads
