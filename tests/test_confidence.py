"""Confidence and selection end to end (issue 29): a sampled run of two tiny checkpoints (4 samples of 4 prompts), then
`reasoning-entropy report --run_dir RUN --confidence_window 3`. The four tables of the section exist with their columns,
and one prompt's values are recomputed here from the stored tokens and generations, independently of the kit's code."""
import math
import numpy as np, pandas as pd
import pytest

from reasoning_entropy.grading import extract_boxed, answers_match
from reasoning_entropy.store import RunStore
from helpers import cli

N, W = 4, 3

COLUMNS = {
    'generation_confidence': ['model', 'prompt_id', 'sample', 'n_tokens', 'entropy_mean', 'self_certainty_mean', 'confidence_mean',
                              'lowest_group_confidence', 'bottom_10_group_confidence', 'tail_confidence', 'window', 'sequence_logprob',
                              'answer_probability', 'extracted_answer', 'correct'],
    'voting': ['model', 'signal', 'weight', 'n_prompts', 'n_samples']
              + [c for v in ('pass_at_1', 'pass_at_n', 'majority', 'weighted', 'filtered_90', 'filtered_10', 'borda') for c in (v, f'{v}_ci_low', f'{v}_ci_high')]
              + ['n_better', 'n_worse', 'change', 'change_ci_low', 'change_ci_high', 'p', 'p_adj', 'verdict'],
    'confidence_auroc': ['model', 'signal', 'n', 'n_correct', 'n_prompts', 'auroc', 'ci_low', 'ci_high', 'p', 'prr', 'p_adj'],
    'semantic_entropy': ['model', 'prompt_id', 'n_samples', 'n_answered', 'n_clusters', 'semantic_entropy', 'weighted_semantic_entropy',
                         'majority_correct'],
}
SIGNALS = ['self_certainty', 'confidence', 'lowest_group', 'bottom_10_group', 'tail', 'neg_entropy']


@pytest.fixture(scope="module")
def reported(tiny_pair, tmp_path_factory):
    "A sampled run made by `compare`, then reported with `report --run_dir` and groups of 3 tokens."
    a, b = tiny_pair
    out = tmp_path_factory.mktemp("confidence") / "run"
    r = cli("compare", "--model_paths", a, b, "--model_names", "A", "B", "--do_sample", "--num_samples", N, "--seed", "7",
            "--num_examples", "4", "--max_new_tokens", "8", "--device", "cpu", "--output_dir", out, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = cli("report", "--run_dir", out, "--confidence_window", W, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def read(store, name):
    return pd.read_csv(store.table_path(name), dtype={'prompt_id': str, 'extracted_answer': str}, keep_default_na=False, na_values=[''])


def test_tables_exist_with_their_columns(reported):
    store = RunStore(reported)
    for name, cols in COLUMNS.items():
        t = read(store, name)
        assert [c for c in t.columns if c != 'training_step'] == cols, name
    assert len(read(store, 'generation_confidence')) == 2 * 4 * N
    v = read(store, 'voting')
    assert list(v.signal) == SIGNALS * 2 and list(v.model) == ['A'] * 6 + ['B'] * 6 and (v.n_prompts == 4).all() and (v.n_samples == N).all()
    assert len(read(store, 'confidence_auroc')) == 12 and len(read(store, 'semantic_entropy')) == 2 * 4
    assert read(store, 'semantic_entropy_summary').kind.tolist() == ['discrete', 'likelihood_weighted'] * 2
    assert store.figure_path('confidence_selection').read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = store.report_html.read_text()
    assert ">Confidence and selection<" in html and "top-5 log-probs" in html and "Traceback" not in html


def _windows(c, w):
    return np.array([c[i:i + w].mean() for i in range(len(c) - w + 1)])


def test_one_prompt_recomputed(reported):
    store = RunStore(reported)
    tokens, gens = store.read_tokens(), store.read_generations()
    refs = dict(zip(store.read_prompts().prompt_id, store.read_prompts().reference_answer))
    m, p = 'B', sorted(set(gens.prompt_id))[1]
    gc = read(store, 'generation_confidence')
    g = gens[(gens.model == m) & (gens.prompt_id == p)].sort_values('sample')
    answers = [extract_boxed(x) for x in g.generated_text]
    right = [answers_match(a, refs[p]) for a in answers]
    seq_lp = []
    for s, ans, ok in zip(g['sample'], answers, right):
        t = tokens[(tokens.model == m) & (tokens.prompt_id == p) & (tokens['sample'] == s)].sort_values('step')
        r = gc[(gc.model == m) & (gc.prompt_id == p) & (gc['sample'] == s)].iloc[0]
        conf = np.array([-np.mean(x) for x in t.top_logprobs]); w = min(W, len(t)); wm = _windows(conf, w)
        assert r.n_tokens == len(t) and r.window == w
        np.testing.assert_allclose([r.entropy_mean, r.confidence_mean, r.sequence_logprob], [t.entropy.mean(), conf.mean(), t.logprob.sum()], rtol=1e-9)
        np.testing.assert_allclose([r.lowest_group_confidence, r.bottom_10_group_confidence, r.tail_confidence],
                                   [wm.min(), np.sort(wm)[:max(1, len(wm) // 10)].mean(), conf[-w:].mean()], rtol=1e-9)
        if 'self_certainty' in t: np.testing.assert_allclose(r.self_certainty_mean, t.self_certainty.mean(), rtol=1e-9)
        assert bool(r.correct) == ok and (pd.isna(r.extracted_answer) if ans is None else r.extracted_answer == ans)
        seq_lp.append(t.logprob.sum())
    # semantic entropy of the prompt: clusters by the grader, a sample without an answer alone
    heads, cl = [], []
    for a in answers:
        j = next((i for i, h in enumerate(heads) if a is not None and h is not None and answers_match(a, h)), None)
        if j is None: heads.append(a); j = len(heads) - 1
        cl.append(j)
    cl = np.array(cl); share = np.bincount(cl) / len(cl)
    wts = np.bincount(cl, np.exp(np.array(seq_lp) - max(seq_lp))); pw = wts / wts.sum()
    se = read(store, 'semantic_entropy'); row = se[(se.model == m) & (se.prompt_id == p)].iloc[0]
    np.testing.assert_allclose([row.semantic_entropy, row.weighted_semantic_entropy],
                               [-(share * np.log(share)).sum(), -(pw[pw > 0] * np.log(pw[pw > 0])).sum()], rtol=1e-9)
    assert row.n_clusters == cl.max() + 1 and row.n_answered == sum(a is not None for a in answers)
    # the majority vote of the checkpoint: a prompt is right when its most common answer (first of equal counts) is
    maj = []
    for q in sorted(set(gens.prompt_id)):
        gq = gens[(gens.model == m) & (gens.prompt_id == q)].sort_values('sample')
        ans = [a for a in map(extract_boxed, gq.generated_text) if a is not None]
        groups = []
        for a in ans:
            h = next((h for h in groups if answers_match(a, h[0])), None)
            if h is None: groups.append([a, 1])
            else: h[1] += 1
        maj.append(bool(groups) and answers_match(max(groups, key=lambda h: h[1])[0], refs[q]))
    v = read(store, 'voting'); vb = v[v.model == m]
    np.testing.assert_allclose(vb.majority, np.mean(maj))
    ok = pd.Series([answers_match(extract_boxed(x), refs[q]) for x, q in zip(gens[gens.model == m].generated_text, gens[gens.model == m].prompt_id)])
    np.testing.assert_allclose(vb.pass_at_1, ok.mean())
