"""The run store end to end: round trip, commit protocol under crashes and kills, resume, configuration
checks, overwrite, hive reading with plain pandas, deterministic order and reproducible derived files."""
import json, os, signal, subprocess, sys, textwrap, time, zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from reasoning_entropy.errors import InputError
from reasoning_entropy import store as S
from reasoning_entropy.store import RunStore, TOKENS_COLUMNS, GENERATIONS_COLUMNS, atomic_write_text, file_fingerprint

CFG = {'models': [{'name': 'ck2', 'path': '/m/2'}, {'name': 'ck1', 'path': '/m/1'}],
       'max_new_tokens': 256, 'data_path': 'd.jsonl', 'data_fingerprint': 'sha256:ab'}
PROMPTS = [f'q{i}' for i in range(5)]


def frames(model: str, pids: list, index: dict):
    "Deterministic tokens/generations frames for `pids` (prompt i gets i+1 tokens)."
    rows, grows = [], []
    for p in pids:
        i = index[p]
        n = i + 1
        for s in range(1, n + 1):
            e = (zlib.crc32(f"{model}|{p}|{s}".encode()) % 1000) / 250.0
            rows.append(dict(prompt_id=p, step=s, token_id=100 + s, current_token=f' t{s-1}', next_token=f' t{s}',
                             entropy=e, logprob=-e / 3, probability=float(np.exp(-e / 3)), rank=1 + s % 3,
                             varentropy=e / 2, top_ids=[100 + s, 7, 8], top_logprobs=[-e / 3, -2.0, -2.5],
                             sampling_entropy=np.nan))
        grows.append(dict(prompt_id=p, prompt_index=i, prompt_text=f'Question {p}', prompt_token_ids=[1, 2, 3],
                          generated_token_ids=list(range(101, 101 + n)), generated_text=f'so \\boxed{{{i}}}',
                          finished=i % 2 == 0, n_tokens=n))
    return pd.DataFrame(rows, columns=TOKENS_COLUMNS), pd.DataFrame(grows)


INDEX = {p: i for i, p in enumerate(PROMPTS)}


def run_all(store, batch: int, models=('ck1', 'ck2')):
    for m in models:
        todo = [p for p in PROMPTS if p not in store.done_prompts(m)]
        for k in range(0, len(todo), batch):
            store.write_batch(m, *frames(m, todo[k:k + batch], INDEX))
        store.mark_model_complete(m, {})


def test_round_trip(tmp_path):
    st = RunStore(tmp_path / 'run').open(CFG)
    run_all(st, batch=2)
    tk, gn = st.read_tokens(), st.read_generations()
    assert list(tk.columns) == ['model'] + TOKENS_COLUMNS
    assert list(gn.columns) == ['model'] + GENERATIONS_COLUMNS
    assert len(tk) == 2 * sum(range(1, 6)) and len(gn) == 10
    exp_t, exp_g = frames('ck1', PROMPTS, INDEX)
    got = tk[tk.model == 'ck1'].reset_index(drop=True)
    pd.testing.assert_series_equal(got.entropy, exp_t.entropy, check_names=False)
    assert [list(x) for x in got.top_ids] == list(exp_t.top_ids)
    assert got.sampling_entropy.isna().all()
    assert got.step.dtype == 'int64' and got.prompt_id.tolist() == exp_t.prompt_id.tolist()
    g1 = gn[gn.model == 'ck1'].reset_index(drop=True)
    assert g1.finished.tolist() == [True, False, True, False, True]
    assert [list(x) for x in g1.generated_token_ids] == list(exp_g.generated_token_ids)
    assert st.is_complete(['ck1', 'ck2'])
    man = json.loads((tmp_path / 'run' / 'run_manifest.json').read_text())
    assert man['progress']['ck1']['prompts_done'] == 5 and man['progress']['ck1']['tokens'] == 15
    assert man['config'] == CFG and set(man['versions']) >= {'python', 'torch', 'transformers', 'reasoning_entropy'}


def test_read_order_follows_run_order_not_write_order(tmp_path):
    st = RunStore(tmp_path).open(CFG)
    st.write_batch('ck1', *frames('ck1', ['q3', 'q0'], INDEX))
    st.write_batch('ck2', *frames('ck2', ['q1'], INDEX))
    st.write_batch('ck1', *frames('ck1', ['q1'], INDEX))
    tk = RunStore(tmp_path).read_tokens()
    assert list(dict.fromkeys(zip(tk.model, tk.prompt_id))) == [('ck2', 'q1'), ('ck1', 'q0'), ('ck1', 'q1'), ('ck1', 'q3')]
    assert tk[(tk.model == 'ck1') & (tk.prompt_id == 'q3')].step.tolist() == [1, 2, 3, 4]
    assert list(RunStore(tmp_path).read_generations(['ck1']).prompt_id) == ['q0', 'q1', 'q3']


def test_hive_read_with_plain_pandas(tmp_path):
    st = RunStore(tmp_path).open(CFG)
    run_all(st, batch=3)
    plain = pd.read_parquet(str(tmp_path) + '/data/tokens')
    assert 'model' in plain.columns
    assert sorted(plain.model.astype(str).unique()) == ['ck1', 'ck2'] and len(plain) == 30
    g = pd.read_parquet(str(tmp_path) + '/data/generations')
    assert 'model' in g.columns and len(g) == 10
    # the store's own readers give plain text, never categorical
    assert not isinstance(st.read_tokens().model.dtype, pd.CategoricalDtype)


def test_crash_between_parts_is_rolled_back(tmp_path, monkeypatch):
    st = RunStore(tmp_path).open(CFG)
    st.write_batch('ck1', *frames('ck1', ['q0', 'q1'], INDEX))
    real = S.pq.write_table

    def dying(table, where, *a, **k):
        if 'generations' in str(Path(where).parent): raise KeyboardInterrupt  # killed before the commit
        return real(table, where, *a, **k)
    monkeypatch.setattr(S.pq, 'write_table', dying)
    with pytest.raises(KeyboardInterrupt): st.write_batch('ck1', *frames('ck1', ['q2', 'q3'], INDEX))
    monkeypatch.setattr(S.pq, 'write_table', real)
    orphan = tmp_path / 'data/tokens/model=ck1/part-00001.parquet'
    assert orphan.exists() and not (tmp_path / 'data/generations/model=ck1/part-00001.parquet').exists()
    assert not list(tmp_path.rglob('.*tmp-*'))  # the failed write left no temporary file
    assert set(RunStore(tmp_path).read_tokens().prompt_id) == {'q0', 'q1'}  # readers skip the uncommitted part
    st2 = RunStore(tmp_path).open(CFG)
    assert not orphan.exists()
    assert st2.done_prompts('ck1') == {'q0', 'q1'}
    assert st2.manifest['progress']['ck1']['prompts_done'] == 2


def test_resume_skips_done_and_matches_uninterrupted(tmp_path):
    from reasoning_entropy.legacy import write_legacy_tables as write_tables, write_legacy_figures as write_figures
    a = RunStore(tmp_path / 'a').open(CFG)
    run_all(a, batch=2)
    b = RunStore(tmp_path / 'b').open(CFG)
    b.write_batch('ck1', *frames('ck1', ['q0'], INDEX))
    b.write_batch('ck1', *frames('ck1', ['q1', 'q2'], INDEX))
    b2 = RunStore(tmp_path / 'b').open(CFG)  # "rerun the same command"
    assert b2.done_prompts('ck1') == {'q0', 'q1', 'q2'} and b2.done_prompts('ck2') == set()
    calls = []
    orig = b2.write_batch
    b2.write_batch = lambda m, t, g, **k: (calls.append(list(g.prompt_id)), orig(m, t, g, **k))[1]
    run_all(b2, batch=3)
    assert calls == [['q3', 'q4'], ['q0', 'q1', 'q2'], ['q3', 'q4']]
    refs = pd.DataFrame({'prompt_id': PROMPTS, 'reference_answer': ['0', '2', '2', None, '4']})
    outs = {}
    for name, st in (('a', a), ('b', b2)):
        files = write_tables(st, refs, save_detailed_tokens=True) + write_figures(st)
        outs[name] = {p.name: p.read_bytes() for p in files}
    assert sorted(outs['a']) == sorted(outs['b']) and len(outs['a']) == 8
    for k in outs['a']: assert outs['a'][k] == outs['b'][k], k


def test_config_mismatch_message(tmp_path):
    RunStore(tmp_path).open(CFG)
    with pytest.raises(InputError) as e: RunStore(tmp_path).open({**CFG, 'max_new_tokens': 64})
    assert str(e.value) == (f'--output_dir {tmp_path}: holds a run with a different configuration '
                            '(max_new_tokens: 256 → 64); rerun with --overwrite or choose another directory')
    assert '\n' not in str(e.value)
    new = {**CFG, 'models': [{'name': 'ck2', 'path': '/m/2'}, {'name': 'ck1', 'path': '/m/9'}], 'data_fingerprint': 'sha256:cd'}
    with pytest.raises(InputError, match=r'\(data_fingerprint: sha256:ab → sha256:cd, models\[1\]\.path: /m/1 → /m/9\)'):
        RunStore(tmp_path).open(new)
    # the same configuration written in another key order or with tuples resumes
    RunStore(tmp_path).open(dict(reversed(list({**CFG, 'models': tuple(CFG['models'])}.items()))))


def test_overwrite_removes_only_owned_files(tmp_path):
    st = RunStore(tmp_path).open(CFG)
    run_all(st, batch=5)
    for n in ['ck1_token_stats.csv', 'prompt_level_results.csv', 'results_summary.json', 'entropy_over_steps.png',
              'ck1_all_tokens_detailed.csv', 'report.html']:
        atomic_write_text(tmp_path / n, 'x')
    (tmp_path / 'my_notes.md').write_text('keep me')
    (tmp_path / 'data' / 'mine.txt').write_text('keep me too')
    st2 = RunStore(tmp_path).open({**CFG, 'max_new_tokens': 8}, overwrite=True)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('*') if p.is_file()) == \
        ['data/mine.txt', 'my_notes.md', 'run_manifest.json']
    assert st2.done_prompts('ck1') == set() and st2.manifest['progress'] == {}
    assert st2.manifest['config']['max_new_tokens'] == 8


def test_directory_with_results_but_no_manifest(tmp_path):
    (tmp_path / 'Checkpoint_1_token_stats.csv').write_text('token,count\n')
    with pytest.raises(InputError, match='holds results \\(Checkpoint_1_token_stats.csv\\) but no run_manifest.json'):
        RunStore(tmp_path).open(CFG)
    RunStore(tmp_path).open(CFG, overwrite=True)
    assert not (tmp_path / 'Checkpoint_1_token_stats.csv').exists()
    other = tmp_path / 'x'; other.mkdir(); (other / 'notes.txt').write_text('n')
    RunStore(other).open(CFG)  # foreign files only: allowed
    f = tmp_path / 'afile'; f.write_text('')
    with pytest.raises(InputError, match='is not a directory'): RunStore(f).open(CFG)


WRITER = textwrap.dedent('''
    import sys, numpy as np, pandas as pd
    sys.path.insert(0, {tests!r})
    from test_store import frames, CFG
    from reasoning_entropy.store import RunStore
    st = RunStore({out!r}).open(CFG)
    pids = [f'p{{i}}' for i in range(100000)]
    index = {{p: i % 7 for i, p in enumerate(pids)}}
    done = st.done_prompts('ck1')
    todo = [p for p in pids if p not in done]
    print('ready', flush=True)
    for k in range(0, len(todo), 3):
        st.write_batch('ck1', *frames('ck1', todo[k:k+3], index))
''')


def test_sigkill_leaves_a_consistent_store(tmp_path):
    out = tmp_path / 'run'
    code = WRITER.format(tests=str(Path(__file__).parent), out=str(out))
    for attempt, delay in enumerate((1.0, 0.7)):
        p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
        assert p.stdout.readline().strip() == b'ready'
        time.sleep(delay)
        p.send_signal(signal.SIGKILL); p.wait()
        st = RunStore(out).open(CFG)  # recovery
        toks = {f.name for f in (out / 'data/tokens/model=ck1').iterdir()}
        gens = {f.name for f in (out / 'data/generations/model=ck1').iterdir()}
        assert toks == gens and not any(n.startswith('.') for n in toks)
        tk, gn = st.read_tokens(), st.read_generations()
        assert len(gn) == len(st.done_prompts('ck1')) > 0
        assert gn.prompt_id.is_unique
        # every committed prompt has exactly its n_tokens token rows
        counts = tk.groupby('prompt_id').size()
        assert (counts.reindex(gn.prompt_id).to_numpy() == gn.n_tokens.to_numpy()).all()
        for f in (out / 'data/tokens/model=ck1').iterdir(): pq.read_metadata(f)  # every file is whole
        json.loads((out / 'run_manifest.json').read_text())
