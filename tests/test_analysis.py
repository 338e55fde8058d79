"""The seed's tables and figures from a store: values, file formats, reproducibility."""
import json, math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reasoning_entropy.store import RunStore, TOKENS_COLUMNS
from reasoning_entropy.legacy import (token_stats, prompt_level_results, detailed_tokens, results_summary,
                                      write_legacy_tables, references_frame, in_bits)
from reasoning_entropy.legacy import plot_entropy_distribution, plot_entropy_over_steps, write_legacy_figures


def tok_rows(model, pid, ents, probs, texts):
    return [dict(model=model, prompt_id=pid, step=s, token_id=s, current_token='', next_token=t, entropy=e,
                 logprob=math.log(p), probability=p, rank=1, varentropy=0.0, top_ids=[s, 0],
                 top_logprobs=[math.log(p), -5.0], sampling_entropy=np.nan)
            for s, (e, p, t) in enumerate(zip(ents, probs, texts), 1)]


@pytest.fixture
def run(tmp_path):
    cfg = {'models': [{'name': 'early', 'path': '/ck/early'}, {'name': 'late', 'path': '/ck/late'}],
           'data_path': 'data.jsonl', 'decoding': {'do_sample': False, 'max_new_tokens': 4}}
    st = RunStore(tmp_path / 'run').open(cfg)
    spec = {'early': {'a': ([2.0, 1.0, 3.0], [0.2, 0.5, 0.1], ['x', 'y', 'x'], 'no box', False),
                      'b': ([1.0], [0.4], ['x'], '\\boxed{1,000}', True)},
            'late': {'a': ([0.5, 0.1], [0.9, 0.95], ['x', '!'], 'so \\boxed{\\frac{1}{2}}', True),
                     'b': ([0.2, 0.2], [0.8, 0.7], ['y', 'y'], '\\boxed{999}', True)}}
    for m, prompts in spec.items():
        rows, gens = [], []
        for i, (pid, (e, p, t, text, fin)) in enumerate(prompts.items()):
            rows += tok_rows(m, pid, e, p, t)
            gens.append(dict(prompt_id=pid, prompt_index=i, prompt_text='Q', prompt_token_ids=[1],
                             generated_token_ids=list(range(len(e))), generated_text=text, finished=fin, n_tokens=len(e)))
        st.write_batch(m, pd.DataFrame(rows), pd.DataFrame(gens), seconds=2.0)
        st.mark_model_complete(m, {'prompt_length_mean': 1.0})
    return st


REFS = pd.DataFrame({'prompt_id': ['a', 'b'], 'reference_answer': ['0.5', '1000']})


def test_prompt_level_results_values(run):
    pr = prompt_level_results(run.read_tokens(), run.read_generations(), REFS)
    assert list(zip(pr.model, pr.prompt_id)) == [('early', 'a'), ('early', 'b'), ('late', 'a'), ('late', 'b')]
    assert pr.n_tokens.tolist() == [3, 1, 2, 2]
    assert pr.entropy_mean.tolist() == pytest.approx([2.0, 1.0, 0.3, 0.2])
    assert pr.extracted_answer.tolist() == [None, '1,000', '\\frac{1}{2}', '999']
    assert pr.correct.tolist() == [False, True, True, False]
    assert pr.finished.tolist() == [False, True, True, True]


def test_results_summary_values(run):
    tk = run.read_tokens()
    pr = prompt_level_results(tk, run.read_generations(), REFS)
    s = results_summary(tk, pr, run.manifest)
    json.dumps(s, allow_nan=False)
    assert list(s['models']) == ['early', 'late'] and s['num_prompts'] == 2
    assert s['data_path'] == 'data.jsonl' and s['decoding'] == {'do_sample': False, 'max_new_tokens': 4}
    late = s['models']['late']
    assert late['model_path'] == '/ck/late' and late['tokens_analyzed'] == 4
    assert late['entropy']['mean'] == pytest.approx(0.25) and late['entropy']['max'] == 0.5
    assert late['entropy']['quantiles']['0.5'] == pytest.approx(0.2)
    assert late['accuracy'] == 0.5 and late['num_with_reference'] == 2
    assert late['finished_share'] == 1.0 and late['generation_length'] == {'mean': 2.0, 'median': 2.0, 'max': 2}
    assert late['seconds'] == 2.0 and late['tokens_per_second'] == pytest.approx(2.0)
    assert late['progress']['prompt_length_mean'] == 1.0
    assert s['models']['early']['tokens_per_second'] == pytest.approx(2.0)


def test_summary_without_references_is_null_accuracy(run):
    tk = run.read_tokens()
    s = results_summary(tk, prompt_level_results(tk, run.read_generations()), run.manifest)
    assert s['models']['early']['accuracy'] is None and s['models']['early']['num_with_reference'] == 0


def test_write_tables_files(run):
    paths = write_legacy_tables(run, REFS, save_detailed_tokens=True)
    names = sorted(p.name for p in paths)
    assert names == ['early_all_tokens_detailed.csv', 'early_token_stats.csv', 'late_all_tokens_detailed.csv',
                     'late_token_stats.csv', 'prompt_level_results.csv', 'results_summary.json']
    det = pd.read_csv(run.legacy_path('all_tokens_detailed', 'late'), dtype={'prompt_id': str})
    assert det.columns.tolist() == TOKENS_COLUMNS
    assert json.loads(det.top_ids[0]) == [1, 0] and json.loads(det.top_logprobs[0])[0] == pytest.approx(math.log(0.9))
    pr = pd.read_csv(run.legacy_path('prompt_level_results.csv'))
    assert pr.correct.tolist() == [False, True, True, False]
    assert json.loads(run.legacy_path('results_summary.json').read_text())['models']['early']['tokens_analyzed'] == 4
    # without the flag, no detailed files
    assert sorted(p.name for p in write_legacy_tables(run)) == ['early_token_stats.csv', 'late_token_stats.csv',
                                                         'prompt_level_results.csv', 'results_summary.json']


def test_figures_saved_non_empty_png(run):
    paths = write_legacy_figures(run)
    assert [p.name for p in paths] == ['aggregated_entropy_distribution.png', 'entropy_over_steps.png']
    for p in paths:
        b = p.read_bytes()
        assert b[:8] == b'\x89PNG\r\n\x1a\n' and len(b) > 10_000
    assert not [f for f in Path(run.dir).iterdir() if f.name.startswith('.')]


def test_figure_contents(run):
    tk = run.read_tokens()
    ax, = plot_entropy_distribution(tk, bins=7).axes
    edges = [h.get_data().edges for h in ax.patches]
    assert len(edges) == 2 and len(edges[0]) == 8 and np.array_equal(edges[0], edges[1])
    top, bottom = plot_entropy_over_steps(tk, n_samples=1).axes
    assert [l.get_label() for l in top.get_lines()] == ['early', 'late']
    assert top.get_lines()[1].get_ydata().tolist() == pytest.approx([0.35, 0.15])
    assert len(bottom.get_lines()) == 2
