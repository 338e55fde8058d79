"""The report analyses (reasoning.py) and figures (figures.py) on a synthetic multi-checkpoint run whose
trends are known by construction: checkpoint k's entropies are the first's times c_k (c = 1, 1/2, 1/4), so
distances, paired differences and aligned changes have exact values; accuracy rises 0.25 → 0.5 → 0.75."""
import io, math

import matplotlib
matplotlib.use('Agg')
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer

from reasoning_entropy import report_tables as R, report_figures as F
from reasoning_entropy.legacy import prompt_level_results
from reasoning_entropy.testing import synthetic_run

MODELS = ['step_100', 'step_200', 'step_300']
SCALE = {'step_100': 1.0, 'step_200': 0.5, 'step_300': 0.25}
N_PROMPTS, N_REF = 24, 20          # the last 4 prompts have no reference answer
N_CORRECT = {'step_100': 5, 'step_200': 10, 'step_300': 15}   # of the 20 with a reference
WORDS = np.array([' so', ' wait', ' =', ' 2', ' x', ',', '.', ' then', ' we', ' check'], dtype=object)


@pytest.fixture(scope='module')
def run():
    rng = np.random.default_rng(7)
    lengths = rng.integers(40, 121, N_PROMPTS)
    toks, gens, scored = [], [], []
    base, words = {}, {}
    for p, L in enumerate(lengths):
        e = rng.exponential(0.5, L) * np.where(np.arange(L) < int(0.7 * L), 1.0, 0.2)
        e[rng.random(L) < 0.25] = 0.0                                   # exact zeros (clipped in histograms)
        w = rng.choice(WORDS, L); w[0] = '<think>'; w[int(0.7 * L) - 1] = '</think>'
        w[int(0.7 * L)] = '\n\nAnswer: '
        base[p], words[p] = e, w
    for m in MODELS:
        for p, L in enumerate(lengths):
            e = SCALE[m] * base[p]
            toks.append(pd.DataFrame(dict(model=m, prompt_id=f'q{p}', step=np.arange(1, L + 1), next_token=words[p],
                                          entropy=e, probability=np.exp(-e))))
            scored.append(pd.DataFrame(dict(model=m, prompt_id=f'q{p}', step=np.arange(1, L + 1), entropy=e)))
            ok = p < N_CORRECT[m]
            gens.append(dict(model=m, prompt_id=f'q{p}', finished=bool(p % 6),
                             generated_text=f"<think>…</think>\n\nAnswer: \\boxed{{{p if ok else -1}}}"))
    tokens = pd.concat(toks, ignore_index=True)
    refs = pd.DataFrame(dict(prompt_id=[f'q{p}' for p in range(N_REF)], reference_answer=[str(p) for p in range(N_REF)]))
    results = prompt_level_results(tokens, pd.DataFrame(gens), refs)
    return tokens, results, pd.concat(scored, ignore_index=True), base


def test_fixture_shape(run):
    tokens, results, scored, _ = run
    assert 3000 < len(tokens) < 10000
    assert list(results.model.unique()) == MODELS and len(results) == 3 * N_PROMPTS
    assert str(results['correct'].dtype) == 'boolean' and results['correct'].isna().sum() == 3 * (N_PROMPTS - N_REF)


def test_model_order(run):
    tokens = run[0]
    assert R.model_order(tokens) == MODELS
    assert R.model_order(tokens, MODELS[::-1]) == MODELS[::-1]
    with pytest.raises(ValueError, match='not in the data'): R.model_order(tokens, ['nope'])
    # a categorical model column (how a hive-partitioned Parquet store reads back) changes nothing
    cat = tokens.assign(model=pd.Categorical(tokens.model, categories=sorted(MODELS)))
    pd.testing.assert_frame_equal(R.entropy_summary(cat), R.entropy_summary(tokens))


def test_entropy_summary(run):
    tokens, _, _, base = run
    s = R.entropy_summary(tokens)
    assert list(s.columns) == ['model', 'n_tokens', 'n_prompts', 'mean', 'median', 'std', 'min', 'max',
                               'q01', 'q05', 'q10', 'q25', 'q50', 'q75', 'q90', 'q95', 'q99']
    allb = np.concatenate(list(base.values()))
    assert s.n_tokens.tolist() == [len(allb)] * 3 and s.n_prompts.tolist() == [N_PROMPTS] * 3
    np.testing.assert_allclose(s['mean'], [SCALE[m] * allb.mean() for m in MODELS])
    np.testing.assert_allclose(s['q90'], [SCALE[m] * np.quantile(allb, 0.9) for m in MODELS])
    np.testing.assert_allclose(s['std'], [SCALE[m] * allb.std() for m in MODELS])
    assert (s['min'] == 0).all() and s['mean'].is_monotonic_decreasing


def test_distributions(run):
    tokens, _, _, base = run
    allb = np.concatenate(list(base.values()))
    h = R.entropy_histograms(tokens, n_bins=40)
    assert list(h.columns) == ['model', 'bin_left', 'bin_right', 'count', 'fraction'] and len(h) == 3 * 40
    assert h.groupby('model', sort=False)['count'].sum().tolist() == [len(allb)] * 3
    np.testing.assert_allclose(h.groupby('model')['fraction'].sum(), 1.0)
    assert h.bin_left.iloc[0] == pytest.approx(1e-6)
    first = h.groupby('model', sort=False)['count'].first()   # the exact zeros land in the first bin
    assert (first >= (allb == 0).sum()).all()
    sb = R.share_below(tokens)
    assert sb.n_below.tolist() == [int((SCALE[m] * allb < 0.01).sum()) for m in MODELS]
    assert sb.share_below.is_monotonic_increasing
    pt = R.percentile_thresholds(tokens)
    np.testing.assert_allclose(pt.threshold, [SCALE[m] * np.quantile(allb, 0.8) for m in MODELS])
    np.testing.assert_allclose(pt.share_above, 0.2, atol=0.01)


def test_steps_and_positions(run):
    tokens, _, _, base = run
    st = R.entropy_by_step(tokens)
    assert list(st.columns) == ['model', 'step', 'n', 'mean', 'ci_low', 'ci_high']
    s1 = st[(st.model == 'step_100') & (st.step == 1)].iloc[0]
    firsts = np.array([b[0] for b in base.values()])
    assert s1.n == N_PROMPTS and s1['mean'] == pytest.approx(firsts.mean())
    assert s1.ci_low < s1['mean'] < s1.ci_high or firsts.std() == 0
    assert st[st.model == 'step_100'].n.max() == N_PROMPTS and st.step.max() == max(len(b) for b in base.values())
    assert R.entropy_by_step(tokens, min_count=N_PROMPTS).step.max() == min(len(b) for b in base.values())
    ps = R.entropy_by_position(tokens, n_bins=20)
    assert list(ps.columns) == ['model', 'bin', 'position', 'n', 'n_prompts', 'mean', 'ci_low', 'ci_high']
    assert len(ps) == 3 * 20 and (ps.n_prompts == N_PROMPTS).all()
    assert ps.groupby('model').n.sum().tolist() == [sum(len(b) for b in base.values())] * 3
    m1 = ps[ps.model == 'step_100'].set_index('bin')['mean']
    assert m1.loc[:12].mean() > 2 * m1.loc[15:].mean()          # the answer (last 30%) is calmer by construction
    np.testing.assert_allclose(ps[ps.model == 'step_300']['mean'].to_numpy(), 0.25 * m1.to_numpy())


def test_tokens(run):
    tokens = run[0]
    tr = R.token_ranking(tokens, n=5, min_count=20)
    assert list(tr.columns) == ['model', 'direction', 'rank', 'token', 'count', 'entropy_mean']
    assert len(tr) == 3 * 2 * 5 and (tr['count'] >= 20).all()
    assert '<think>' in set(R.token_ranking(tokens, n=50, min_count=24).token)      # once per generation: 24 times
    assert '<think>' not in set(R.token_ranking(tokens, n=50, min_count=25).token)
    hi = tr[(tr.model == 'step_100') & (tr.direction == 'high')]
    assert hi.entropy_mean.is_monotonic_decreasing
    g = tokens[tokens.model == 'step_100'].groupby('next_token').entropy.agg(['mean', 'count'])
    assert hi.token.iloc[0] == g[g['count'] >= 20]['mean'].idxmax()
    # scaling every entropy keeps the ranking: the same strings, top to bottom
    assert hi.token.tolist() == tr[(tr.model == 'step_300') & (tr.direction == 'high')].token.tolist()
    ft = R.forking_tokens(tokens, top_n=5)
    assert list(ft.columns) == ['model', 'threshold', 'rank', 'token', 'n_forking', 'count', 'forking_rate']
    assert (ft.groupby('model').size() == 5).all()
    assert all(g.n_forking.is_monotonic_decreasing for _, g in ft.groupby('model'))
    f1 = ft[ft.model == 'step_100']; t1 = tokens[tokens.model == 'step_100']
    fork = t1[t1.entropy > f1.threshold.iloc[0]].next_token.value_counts()
    assert f1.n_forking.tolist() == sorted(fork.tolist(), reverse=True)[:5]
    fo = R.forking_overlap(tokens, top_n=5)
    assert list(fo.columns) == ['model', 'n_set', 'jaccard_prev', 'jaccard_first', 'n_new', 'n_lost']
    assert math.isnan(fo.jaccard_prev[0]) and fo.jaccard_first[0] == 1.0
    # entropies scaled by a constant: the same tokens are forking, the sets are identical
    assert fo.jaccard_prev[1:].tolist() == [1.0, 1.0] and fo.n_new[1:].tolist() == [0, 0]
    # a checkpoint with shuffled entropies forks elsewhere
    sh = tokens[tokens.model == 'step_100'].assign(model='shuffled', entropy=lambda d: np.random.default_rng(0).permutation(d.entropy.to_numpy()))
    fo2 = R.forking_overlap(pd.concat([tokens, sh]), models=['step_100', 'shuffled'], top_n=5)
    assert fo2.jaccard_prev[1] < 1.0


def test_think_vs_answer(run):
    tokens, _, _, base = run
    seg = R.think_segments(tokens)
    assert set(seg) == {'think', 'answer'}
    one = tokens[(tokens.model == 'step_100') & (tokens.prompt_id == 'q0')]
    L = len(base[0])
    assert (seg[one.index] == ['think'] * int(0.7 * L) + ['answer'] * (L - int(0.7 * L))).all()
    t = R.think_vs_answer(tokens)
    assert list(t.columns) == ['model', 'segment', 'n_generations', 'n_tokens', 'entropy_mean', 'ci_low', 'ci_high', 'entropy_median']
    assert t.segment.tolist() == ['think', 'answer'] * 3 and (t.n_generations == N_PROMPTS).all()
    think = np.concatenate([b[:int(0.7 * len(b))] for b in base.values()])
    assert t.entropy_mean[0] == pytest.approx(think.mean()) and t.n_tokens[0] == len(think)
    w = t.pivot(index='model', columns='segment', values='entropy_mean')
    assert (w.think > 2 * w.answer).all()
    # a generation cut before </think> is "unclosed", not think
    cut = tokens[~((tokens.model == 'step_100') & (tokens.prompt_id == 'q0') & (tokens.step >= int(0.7 * L)))]
    u = R.think_vs_answer(cut, ['step_100'])
    assert u.segment.tolist() == ['think', 'answer', 'unclosed'] and u.n_generations.tolist() == [23, 23, 1]


def test_accuracy_and_correctness(run):
    results = run[1]
    a = R.accuracy_by_model(results)
    assert list(a.columns) == ['model', 'n_prompts', 'n_scored', 'n_correct', 'accuracy', 'ci_low', 'ci_high', 'finished_rate']
    assert a.n_scored.tolist() == [N_REF] * 3 and a.n_correct.tolist() == [5, 10, 15]
    np.testing.assert_allclose(a.accuracy, [0.25, 0.5, 0.75])
    assert (a.ci_low < a.accuracy).all() and (a.accuracy < a.ci_high).all()
    np.testing.assert_allclose(a.finished_rate, 20 / 24)
    ec = R.entropy_by_correctness(results)
    assert list(ec.columns) == ['model', 'correct', 'n_prompts', 'entropy_mean', 'ci_low', 'ci_high']
    assert ec.n_prompts.tolist() == [5, 15, 10, 10, 15, 5]
    r1 = results[results.model == 'step_100']
    assert ec.entropy_mean[0] == pytest.approx(r1.entropy_mean[:5].mean())
    ev = R.entropy_vs_accuracy(results)
    assert list(ev.columns) == ['model', 'checkpoint', 'entropy_mean', 'prompt_entropy_mean', 'accuracy', 'n_scored']
    np.testing.assert_allclose(ev.entropy_mean, R.entropy_summary(run[0])['mean'])   # token-weighted = token level
    assert ev.entropy_mean.is_monotonic_decreasing and ev.accuracy.is_monotonic_increasing


def test_distances(run):
    tokens, _, _, base = run
    mu = np.concatenate(list(base.values())).mean()
    d = R.distribution_distances(tokens)
    assert list(d.columns) == ['model', 'comparison', 'ref_model', 'wasserstein', 'ks', 'n', 'n_ref']
    assert d.comparison.tolist() == ['consecutive', 'vs_first'] * 2
    # W1(x, c·x) = (1 − c)·mean(x) for x ≥ 0
    np.testing.assert_allclose(d.wasserstein, [0.5 * mu, 0.5 * mu, 0.25 * mu, 0.75 * mu], rtol=1e-9)
    assert d.ks.between(0, 1).all() and d.ks[3] > d.ks[2]
    x = np.random.default_rng(3).normal(size=300)
    assert R.wasserstein1([0, 3], [1, 2]) == pytest.approx(1.0)        # crossing CDFs do not cancel
    assert R.ks_distance(x, x + 100) == 1.0 and R.wasserstein1(x, x + 100) == pytest.approx(100)


def test_paired_differences(run):
    results = run[1]
    p = R.paired_differences(results, n_boot=2000, seed=1)
    assert list(p.columns) == ['model', 'ref_model', 'n_prompts', 'mean_diff', 'ci_low', 'ci_high', 'median_diff', 'share_lower']
    r1 = results[results.model == 'step_100'].entropy_mean.to_numpy()
    np.testing.assert_allclose(p.mean_diff, [-0.5 * r1.mean(), -0.75 * r1.mean()])
    assert p.n_prompts.tolist() == [N_PROMPTS] * 2 and (p.ci_high < 0).all() and (p.ci_low < p.mean_diff).all()
    assert p.share_lower.tolist() == [1.0, 1.0]
    pd.testing.assert_frame_equal(p, R.paired_differences(results, n_boot=2000, seed=1))   # seeded
    # the interval narrows like 1/sqrt(n): 4× the prompts, about half the width
    lo, hi = R.bootstrap_mean_ci(np.random.default_rng(0).normal(size=100))
    lo4, hi4 = R.bootstrap_mean_ci(np.random.default_rng(0).normal(size=400))
    assert 0.4 < (hi4 - lo4) / (hi - lo) < 0.6


def test_aligned(run):
    scored = run[2]
    o = R.aligned_top_overlap(scored)
    assert list(o.columns) == ['model', 'ref_model', 'n_positions', 'n_top_ref', 'n_top_both', 'overlap', 'chance']
    assert o.overlap.tolist() == [1.0, 1.0] and o.n_positions.tolist() == [len(scored) // 3] * 2
    np.testing.assert_allclose(o.chance, 0.2, atol=0.01)
    c = R.aligned_change_by_decile(scored)
    assert list(c.columns) == ['model', 'ref_model', 'bin', 'n', 'ref_entropy_mean', 'entropy_mean', 'delta_mean', 'ci_low', 'ci_high']
    assert c[c.model == 'step_200'].bin.tolist() == list(range(1, 11))
    np.testing.assert_allclose(c.delta_mean, (c.entropy_mean - c.ref_entropy_mean))
    np.testing.assert_allclose(c[c.model == 'step_300'].delta_mean, -0.75 * c[c.model == 'step_300'].ref_entropy_mean)
    assert c[c.model == 'step_200'].ref_entropy_mean.is_monotonic_increasing
    # a checkpoint that scores a different sequence set: only shared positions are compared
    part = scored[~((scored.model == 'step_300') & (scored.step > 20))]
    assert R.aligned_top_overlap(part).n_positions.tolist()[1] == 20 * N_PROMPTS


def test_read_me_covers_every_analysis():
    assert set(R.READ_ME) == {'entropy_summary', 'entropy_histograms', 'share_below', 'percentile_thresholds',
                              'entropy_by_step', 'entropy_by_position', 'token_ranking', 'forking_tokens',
                              'forking_overlap', 'think_vs_answer', 'accuracy_by_model', 'entropy_by_correctness',
                              'entropy_vs_accuracy', 'distribution_distances', 'paired_differences',
                              'aligned_top_overlap', 'aligned_change_by_decile'}
    assert all(s.strip().endswith('.') for s in R.READ_ME.values())
    assert set(F.READ_ME) == set(F.FIGURE_ANALYSES) and all(callable(getattr(F, f)) for f in F.READ_ME)


# ---- figures ---------------------------------------------------------------------------------------------

def _bars(ax): return [c for c in ax.containers if isinstance(c, BarContainer)]


def test_colors_consistent(run):
    tokens, results = run[:2]
    cols = F.checkpoint_colors(MODELS)
    assert len(set(cols.values())) == 3
    f1 = F.fig_entropy_hist_log(tokens); f2 = F.fig_entropy_by_step(tokens)
    for f in (f1, f2):
        assert [l.get_color() for l in f.axes[0].lines[:3]] == [cols[m] for m in MODELS]
    assert [p.get_facecolor() for p in F.fig_low_entropy(tokens).axes[0].patches] == [cols[m] for m in MODELS]
    # a subset keeps the order given
    f = F.fig_entropy_by_step(tokens, models=['step_300', 'step_100'])
    assert [l.get_label() for l in f.axes[0].lines] == ['step_300', 'step_100']


def test_figures_render(run, tmp_path):
    tokens, results, scored, _ = run
    f = F.fig_entropy_hist_log(tokens, n_bins=30)
    assert len(f.axes[0].lines) == 4 and len(f.axes[0].lines[0].get_xdata()) == 30
    assert len(F.fig_entropy_hist_log(tokens, threshold=None).axes[0].lines) == 3
    assert [len(ax.patches) for ax in F.fig_low_entropy(tokens).axes] == [3, 3]
    f = F.fig_entropy_by_position(tokens, n_bins=20)
    assert len(f.axes[0].lines) == 3 and len(f.axes[0].lines[0].get_xdata()) == 20
    f = F.fig_token_ranking(tokens, n=4, min_count=20)
    assert len(f.axes) == 6 and [len(ax.patches) for ax in f.axes] == [4] * 6
    f = F.fig_forking_overlap(tokens, top_n=5)
    assert len(f.axes[0].lines) == 2 and list(f.axes[0].lines[0].get_ydata()) == [1.0, 1.0]
    f = F.fig_think_vs_answer(tokens)
    assert [b.get_label() for b in _bars(f.axes[0])] == ['think', 'answer'] and [len(b) for b in _bars(f.axes[0])] == [3, 3]
    f = F.fig_accuracy(results)
    np.testing.assert_allclose([p.get_height() for p in f.axes[0].patches], [0.25, 0.5, 0.75])
    assert [len(b) for b in _bars(F.fig_entropy_by_correctness(results).axes[0])] == [3, 3]
    f = F.fig_entropy_vs_accuracy(results)
    assert [t.get_text() for t in f.axes[0].texts] == MODELS
    np.testing.assert_allclose(f.axes[0].lines[0].get_ydata(), [0.25, 0.5, 0.75])
    f = F.fig_distances(tokens)
    assert [len(ax.lines) for ax in f.axes] == [2, 2] and [len(l.get_xdata()) for l in f.axes[0].lines] == [2, 2]
    f = F.fig_paired_differences(results, n_boot=300)
    assert len(f.axes[0].containers) == 2
    f = F.fig_aligned(scored)
    assert len(f.axes[0].lines) == 2 and len(f.axes[1].lines) == 1 + 2
    # every figure saves under Agg
    for name in F.READ_ME:
        arg = results if name in ('fig_accuracy', 'fig_entropy_by_correctness', 'fig_entropy_vs_accuracy',
                                  'fig_paired_differences') else scored if name == 'fig_aligned' else tokens
        kw = dict(n_boot=200) if name == 'fig_paired_differences' else {}
        getattr(F, name)(arg, **kw).savefig(tmp_path / f'{name}.png', dpi=40)
    assert len(list(tmp_path.glob('*.png'))) == len(F.READ_ME)


def test_one_checkpoint_draws(run):
    "A run with a single checkpoint has nothing to compare, but every figure still renders."
    tokens, results, scored, _ = run
    one = lambda d: d[d.model == 'step_100']
    assert R.distribution_distances(one(tokens)).empty and R.paired_differences(one(results)).empty
    assert R.aligned_top_overlap(one(scored)).empty and R.aligned_change_by_decile(one(scored)).empty
    for name in F.READ_ME:
        arg = results if name in ('fig_accuracy', 'fig_entropy_by_correctness', 'fig_entropy_vs_accuracy',
                                  'fig_paired_differences') else scored if name == 'fig_aligned' else tokens
        getattr(F, name)(one(arg)).savefig(io.BytesIO(), format='png', dpi=30)
