"""Compaction end to end: a process compacting a run, killed with a signal at any moment, loses no row and duplicates
none; the readers (the store's and `query`'s) give the same tables before recovery, after it, and once compaction
has finished. (The unit examples, with a fault at every file operation, are in nbs/04_store.ipynb.)"""
import signal, subprocess, sys, textwrap, time
from pathlib import Path

import pandas as pd
import pytest

from reasoning_entropy.store import RunStore
from reasoning_entropy.query import token_source

MODELS = ['a', 'b']
ROWS = 800  # token rows per compacted part: about five per checkpoint, so a kill falls between commits too

COMPACTOR = textwrap.dedent('''
    import os, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a job started in the background inherits SIGINT ignored
    from reasoning_entropy.store import RunStore
    stop, seen, real = int(sys.argv[3]), [0], os.replace
    def replace(a, b):  # every file the compaction commits goes through os.replace: stop right after the stop-th
        real(a, b); seen[0] += 1
        if seen[0] == stop: print('stopped', flush=True); time.sleep(600)
    os.replace = replace
    print('ready', flush=True)
    RunStore(sys.argv[1]).compact(rows=int(sys.argv[2]), min_parts=2)
    print('done', flush=True)
''')


@pytest.fixture
def many_parts(tmp_path, monkeypatch):
    "A complete synthetic run of two checkpoints, one prompt (two samples) per part: 80 parts each, not compacted."
    from reasoning_entropy.testing import synthetic_run_dir
    monkeypatch.setattr(RunStore, '_compact_complete', lambda self, model: None)  # as a run written before compaction
    return synthetic_run_dir(tmp_path / 'run', n_prompts=80, models=MODELS, max_steps=40, samples=2, batch=1, legacy=False)


def state(run: Path) -> tuple:
    "What the readers give: tokens, generations, done pairs, counts per checkpoint, and two queries of `query`."
    st = RunStore(run)
    src = token_source(RunStore(run))
    agg = src.sql('select model, count(*) n, sum(step) s, avg(entropy) e from tokens group by 1 order by 1')
    return (st.read_tokens(), st.read_generations(), {m: st.done_units(m) for m in MODELS}, st._part_counts(), agg,
            src.rows(['7', '70'], ['entropy']))


def assert_same(a: tuple, b: tuple):
    for x, y in zip(a[:2], b[:2]): pd.testing.assert_frame_equal(x, y)
    assert a[2:4] == b[2:4]
    pd.testing.assert_frame_equal(a[4], b[4], check_exact=False, rtol=1e-12)  # DuckDB's avg: the order of the sum may change
    pd.testing.assert_frame_equal(a[5], b[5])


def names(run: Path, kind: str, model: str) -> set:
    return {f.name for f in (run / 'data' / kind / f'model={model}').iterdir()}


def test_signal_mid_compaction_loses_nothing(many_parts):
    run = many_parts
    before = state(run)
    partial, finished = 0, False
    for attempt, stop in enumerate((1, 2, 3, 4, 6, 9, 13, 20, 30, 45, 70, 100)):  # killed right after the stop-th file it commits
        p = subprocess.Popen([sys.executable, '-c', COMPACTOR, str(run), str(ROWS), str(stop)], stdout=subprocess.PIPE,
                             cwd=Path(__file__).parent.parent)
        assert p.stdout.readline().strip() == b'ready'
        finished = p.stdout.readline().strip() == b'done'
        if not finished: p.send_signal(signal.SIGKILL if attempt % 3 else signal.SIGINT)
        p.wait()
        gens = names(run, 'generations', 'a') | names(run, 'generations', 'b')
        partial += any(n.startswith('part-compacted.') for n in gens) and any(n.startswith('part-0') for n in gens)
        assert_same(state(run), before)  # as the kill left it: no recovery
        RunStore(run).open(RunStore(run).identity)  # recovery: finish or undo the interrupted step
        for m in MODELS:
            assert names(run, 'tokens', m) == names(run, 'generations', m)  # every part has its pair, no temporary file
        assert_same(state(run), before)
        if finished: break
    assert partial, 'no kill fell in the middle of a compaction'
    RunStore(run).compact(rows=ROWS, min_parts=2)
    assert_same(state(run), before)
    for m in MODELS:
        left = names(run, 'generations', m)
        assert all(n.startswith('part-compacted.') for n in left) and 3 <= len(left) <= 8, left
