"""Sampled runs end to end: `reasoning-entropy report --do_sample --num_samples 4 --seed 7` on two tiny checkpoints.
The report's sample section (pass@k table and curve, majority vote, spread, right vs wrong samples), the original
script's files aggregated over samples, and the explorer's sample control, all on what the command wrote."""
import json, re
import numpy as np, pandas as pd
import pytest

from reasoning_entropy.grading import extract_boxed, answers_match, majority_answer, pass_at_k
from reasoning_entropy.store import RunStore
from helpers import cli

N = 4


@pytest.fixture(scope="module")
def sampled(tiny_pair, tmp_path_factory):
    "A report made through the command line with 4 samples of each of 4 prompts."
    a, b = tiny_pair
    out = tmp_path_factory.mktemp("samples") / "run"
    r = cli("report", "--model_paths", a, b, "--do_sample", "--num_samples", N, "--seed", "7", "--num_examples", "4",
            "--max_new_tokens", "8", "--output_dir", out, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_report_has_the_sample_section(sampled):
    store = RunStore(sampled)
    models = store.models
    pk = pd.read_csv(store.table_path("pass_at_k"))
    assert {m: list(g.k) for m, g in pk.groupby("model", sort=False)} == {m: [1, 2, 4] for m in models}
    assert (pk.n_samples == N).all() and (pk.n_prompts == 4).all()
    assert ((pk.ci_low <= pk.pass_at_k) & (pk.pass_at_k <= pk.ci_high)).all() and pk.pass_at_k.between(0, 1).all()
    for name in ("majority_vote", "sample_entropy_spread", "entropy_correct_vs_incorrect"):
        t = pd.read_csv(store.table_path(name))
        assert list(t.model) == models, name
    spread = pd.read_csv(store.table_path("sample_entropy_spread"))
    assert (spread.n_prompts == 4).all() and (spread.n_samples == N).all() and (spread.within_sd > 0).all()
    fig = store.figure_path("pass_at_k")
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 10_000
    html = store.report_html.read_text()
    assert ">Samples<" in html and f"{N} samples of every prompt" in html and "sample 0 of 4" in html
    assert "Traceback" not in html and 'data-mime-type="application/vnd.jupyter.stderr"' not in html


def test_original_files_aggregate_over_samples(sampled):
    store = RunStore(sampled)
    tokens, gens = store.read_tokens(), store.read_generations()
    refs = dict(zip(store.read_prompts().prompt_id, store.read_prompts().reference_answer))
    assert len(gens) == 2 * 4 * N and sorted(set(gens["sample"])) == list(range(N))
    plr = pd.read_csv(store.legacy_path("prompt_level_results.csv"), dtype={"prompt_id": str}, keep_default_na=False, na_values=[""])
    assert len(plr) == 2 * 4 and (plr.n_samples == N).all()
    assert list(plr.columns[-2:]) == ["n_samples", "n_correct"]
    for r in plr.itertuples():
        g = gens[(gens.model == r.model) & (gens.prompt_id == r.prompt_id)].sort_values("sample")
        t = tokens[(tokens.model == r.model) & (tokens.prompt_id == r.prompt_id)]
        answers = [extract_boxed(x) for x in g.generated_text]
        assert r.n_tokens == len(t) == g.n_tokens.sum()
        np.testing.assert_allclose(r.entropy_mean, t.entropy.mean(), rtol=1e-9)
        assert r.generated_text == g.generated_text.iloc[0] and bool(r.finished) == bool(g.finished.all())
        assert (None if pd.isna(r.extracted_answer) else r.extracted_answer) == majority_answer(answers)
        assert r.n_correct == sum(answers_match(a, refs[r.prompt_id]) for a in answers)
    s = json.loads(store.legacy_path("results_summary.json").read_text())
    pk = pd.read_csv(store.table_path("pass_at_k"))
    for m, v in s["models"].items():
        assert v["num_samples"] == N and list(v["pass_at_k"]) == ["1", "2", "4"]
        p = plr[plr.model == m]
        for k in (1, 2, 4):
            want = np.mean([pass_at_k(N, int(c), k) for c in p.n_correct])
            np.testing.assert_allclose(v["pass_at_k"][str(k)], want, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(pk[(pk.model == m) & (pk.k == k)].pass_at_k.iloc[0], want, rtol=1e-12, atol=1e-15)
        assert v["generation_length"]["max"] <= 8 and v["tokens_analyzed"] == len(tokens[tokens.model == m])


def test_explorer_shows_the_chosen_sample(sampled):
    from reasoning_entropy.explorer import Explorer
    tokens = RunStore(sampled).read_tokens()
    ex = Explorer(sampled)
    assert [v for _, v in ex.w_sample.options] == list(range(N)) and ex.w_sample in ex._top.children
    for s in (0, 3):
        ex.w_sample.value = s
        sel = (tokens.prompt_id == "0") & (tokens["sample"] == s)
        assert len(re.findall(r'<span class="re-tok', ex.w_html.value)) == int(sel.sum())
        m = ex.all_models[0]
        y = ex.figure.axes[0].get_lines()[0].get_ydata()
        np.testing.assert_allclose(y, tokens[sel & (tokens.model == m)].sort_values("step").entropy.to_numpy(), rtol=0, atol=0)


def test_pass_at_k_ends_at_the_number_of_samples():
    "10 samples per prompt: pass@k at k = 1, 2, 4, 8 and 10 (pass@10: whether any sample is right), not stopping at 8."
    from reasoning_entropy.grading import pass_ks
    from reasoning_entropy.report_tables import pass_at_k_table
    assert pass_ks(10) == [1, 2, 4, 8, 10] and pass_ks(N) == [1, 2, 4]
    n_correct = [0, 1, 3, 10]
    res = pd.DataFrame(dict(model="a", prompt_id=list("pqrs"), n_samples=10, n_correct=pd.array(n_correct, dtype="Int64")))
    pk = pass_at_k_table(res)
    assert pk.k.tolist() == [1, 2, 4, 8, 10] and (pk.n_samples == 10).all() and (pk.n_prompts == 4).all()
    assert pk.pass_at_k.iloc[-1] == 0.75                                   # 3 of the 4 prompts have a right sample
    np.testing.assert_allclose(pk.pass_at_k, [np.mean([pass_at_k(10, c, k) for c in n_correct]) for k in (1, 2, 4, 8, 10)], rtol=1e-12)
    np.testing.assert_allclose(pk.pass_at_k.iloc[0], np.mean(n_correct) / 10, rtol=1e-12)  # pass@1: the share of right samples
