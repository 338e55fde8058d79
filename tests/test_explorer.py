"The explorer driven in Python: controls change the rendered HTML and the figure; it reads only what it shows."
import re
import numpy as np, pandas as pd
import pytest
from reasoning_entropy import explorer as E
from reasoning_entropy.explorer import Explorer, token_heatmap
from reasoning_entropy.testing import synthetic_run_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return synthetic_run_dir(tmp_path_factory.mktemp("ex") / "run", n_prompts=40, models=["c1", "c2", "c3", "c4"], max_steps=16, batch=10)


def spans(html):
    return re.findall(r'<span class="re-tok[^"]*" style="background:([^;]+);', html)


def test_controls_change_view(run):
    ex = Explorer(run)
    t = pd.read_parquet(run / "data" / "tokens"); t["model"] = t.model.astype(str)
    # prompt 0, all checkpoints: one coloured span per token of each checkpoint
    n0 = int((t.prompt_id == "0").sum())
    assert len(spans(ex.w_html.value)) == n0
    assert [l.get_label() for l in ex.figure.axes[0].get_lines()] == ["c1", "c2", "c3", "c4"]
    y = ex.figure.axes[0].get_lines()[0].get_ydata()
    np.testing.assert_allclose(y, t[(t.model == "c1") & (t.prompt_id == "0")].sort_values("step").entropy)
    # another prompt
    ex.w_prompt.value = "5"
    assert len(spans(ex.w_html.value)) == int((t.prompt_id == "5").sum())
    assert "prompt 5" in ex.w_html.value
    # fewer checkpoints
    ex.w_models.value = ("c2", "c4")
    assert len(spans(ex.w_html.value)) == int(((t.prompt_id == "5") & t.model.isin(["c2", "c4"])).sum())
    assert [l.get_label() for l in ex.figure.axes[0].get_lines()] == ["c2", "c4"]
    # metric: probability colours differ from entropy colours, same tokens
    before = spans(ex.w_html.value)
    ex.w_metric.value = "probability"
    after = spans(ex.w_html.value)
    assert len(after) == len(before) and after != before
    # quantile filter outlines the tokens above it
    ex.w_metric.value = "entropy"
    ex.w_quantile.value = 0.5
    n_half = ex.w_html.value.count("re-fork")
    ex.w_quantile.value = 0.9
    n_90 = ex.w_html.value.count("re-fork")
    assert n_half > n_90 > 0
    # correctness marks come from prompt_level_results
    plr = pd.read_csv(run / "prompt_level_results.csv", dtype={"prompt_id": str})
    ok = plr[(plr.prompt_id == "5") & (plr.model == "c2")].correct.iloc[0]
    assert ("✓ correct" if ok else "✗ incorrect") in ex.w_html.value


def test_search_and_rank(run):
    ex = Explorer(run)
    ex.search("What is 3 + 3")
    assert [v for _, v in ex.w_prompt.options] == ["3"] and "prompt 3" in ex.w_html.value
    rank = ex.rank_by_change("c1", "c4")
    plr = pd.read_csv(run / "prompt_level_results.csv", dtype={"prompt_id": str})
    p = plr.pivot_table(index="prompt_id", columns="model", values="entropy_mean")
    best = (p.c4 - p.c1).abs().idxmax()
    assert rank.prompt_id.iloc[0] == best == ex.w_prompt.value
    assert f"prompt {best}" in ex.w_html.value


def test_delta_metric_on_scored_sequences(run, tmp_path):
    "Δentropy needs scored sequences: rows align on (prompt, step) and the first checkpoint's delta is 0."
    import shutil
    r = tmp_path / "run"; shutil.copytree(run, r)
    t = pd.read_parquet(r / "data" / "tokens"); t["model"] = t.model.astype(str)
    ref = t[t.model == "c1"]
    for i, m in enumerate(["c1", "c2", "c3", "c4"]):
        d = r / "data" / "scored" / f"model={m}"; d.mkdir(parents=True)
        ref.drop(columns="model").assign(entropy=ref.entropy * (1 - 0.2 * i)).to_parquet(d / "part-00000.parquet", index=False)
    ex = Explorer(r)
    assert "delta_entropy" in ex.w_metric.options
    ex.w_metric.value = "delta_entropy"
    rows = ex.tokens("0", ["c1", "c3"], "delta_entropy")
    e0 = ref[ref.prompt_id == "0"].sort_values("step").entropy.to_numpy()
    np.testing.assert_allclose(rows[rows.model == "c1"].delta_entropy, 0)
    np.testing.assert_allclose(rows[rows.model == "c3"].delta_entropy, -0.4 * e0)
    assert "colour: delta_entropy" in ex.w_html.value


def test_reads_only_what_is_shown(run, monkeypatch):
    calls = []
    real = E._read_rows
    monkeypatch.setattr(E, "_read_rows", lambda root, pid, models, columns=None: calls.append((pid, tuple(models))) or real(root, pid, models, columns))
    ex = Explorer(run)
    assert calls == [("0", ("c1", "c2", "c3", "c4"))]
    ex.w_prompt.value = "9"
    assert calls[-1] == ("9", ("c1", "c2", "c3", "c4")) and len(calls) == 2


def test_heatmap_is_the_one_implementation():
    "The report and the explorer render tokens with the same function."
    import inspect
    from reasoning_entropy import explorer
    src = open(inspect.getfile(explorer)).read()
    assert src.count("def token_heatmap(") == 1
    from importlib.resources import files
    tpl = (files("reasoning_entropy") / "templates" / "comparison_report.ipynb").read_text()
    assert "from reasoning_entropy.explorer import token_heatmap" in tpl
