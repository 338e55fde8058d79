"""Fault injection (issue 27, acceptance): `compare` killed with SIGKILL at 20 seeded points, each resumed by the same
command, equals the run that was never interrupted, and `verify` finds it sound.

The points are the calls a write goes through, counted in the process itself: `os.fsync`, `os.replace`, `os.rename`,
`os.unlink`, `os.write` (the ledger's appends), `Path.write_bytes` (the bytes of every atomic write: parts, the
manifest, the prompts, the original script's files) and `ParquetWriter.write_table` (a compacted part), when the
kit calls them. The process kills itself (SIGKILL) just before the N-th such call; at a write it first writes
half the bytes, so the kill tears the write. No production hook: the calls are wrapped in a child process.

The children are forked from one server process that has already imported the kit, torch and transformers
(`SERVER` below), so each run costs its work and not Python's start-up. Compaction runs when a checkpoint is marked
complete and has `min_parts` small parts (32 by default); the children compact from 2 parts (`RunStore.compact`
wrapped with `min_parts=2`), so the 4 parts of each checkpoint are compacted and kills fall inside compaction too.
"""
import json, os, re, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reasoning_entropy.integrity import verify_run_dir
from reasoning_entropy.store import RunStore
from helpers import cli, cli_env

SEED = 27  # the points drawn: numpy's default_rng(SEED)
POINTS = 20
STRATA = {'part': 4, 'ledger': 3, 'manifest': 4, 'compaction': 4, 'prompts': 1}  # at least this many points of each kind; the rest from all
KEYS = {'tokens': ['model', 'prompt_id', 'sample', 'step'], 'generations': ['model', 'prompt_id', 'sample']}

SERVER = textwrap.dedent(r'''
    import json, os, re, signal, sys, traceback
    from pathlib import Path
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a job started in the background inherits SIGINT ignored
    import torch, transformers, matplotlib
    matplotlib.use('Agg')
    torch.set_num_threads(1)
    from transformers import AutoTokenizer, Qwen2ForCausalLM  # the tiny checkpoints' classes, loaded once
    import pyarrow.parquet as pq
    from reasoning_entropy import cli, store, compare, legacy, integrity
    from reasoning_entropy.store import RunStore

    CTX = [('compaction', {'_compact_group', '_finish_compactions', 'compact'}), ('part', {'_write_parts'}),
           ('manifest', {'_save_manifest'}), ('prompts', {'_write_prompts_frame'}), ('legacy', {'write_legacy_outputs'}),
           ('recovery', {'_recover'}), ('lock', {'writing', 'launch_writing'})]

    def install(run, kill_at, labels, killed_file):
        "Wrap the calls a write goes through: count each the kit makes; kill the process just before the `kill_at`-th."
        run, n = os.path.realpath(run), [0]
        real = dict(fsync=os.fsync, replace=os.replace, rename=os.rename, unlink=os.unlink, write=os.write,
                    write_bytes=Path.write_bytes, parquet_write=pq.ParquetWriter.write_table)
        def where(arg):
            p = os.readlink(f'/proc/self/fd/{arg}') if isinstance(arg, int) else os.path.realpath(arg)
            return re.sub(r'\.tmp-[^./]+', '.tmp-*', os.path.relpath(p, run))
        def point(op, arg):
            f, names, first = sys._getframe(2), set(), None
            while f is not None:
                mod = f.f_globals.get('__name__', '')
                if first is None and mod != 'pathlib': first = mod
                if mod.startswith('reasoning_entropy'): names.add(f.f_code.co_name)
                f = f.f_back
            if not (first or '').startswith('reasoning_entropy'): return False  # a library's own call
            ctx = next((c for c, fs in CTX if fs & names), 'other')
            if '_append_lines' in names: op = 'ledger-' + op
            label = f'{ctx}:{op} {where(arg)}'
            k, n[0] = n[0], n[0] + 1
            if labels is not None: labels.append(label)
            if k != kill_at: return False
            Path(killed_file).write_text(json.dumps([k, label]))
            return True
        die = lambda: os.kill(os.getpid(), signal.SIGKILL)
        def plain(op):
            def wrapped(a, *rest, **kw):
                if point(op, a): die()
                return real[op](a, *rest, **kw)
            return wrapped
        for op in ('fsync', 'replace', 'rename', 'unlink'): setattr(os, op, plain(op))
        def write(fd, data):
            if point('write', fd): real['write'](fd, bytes(data)[:len(data) // 2]); die()  # a torn write
            return real['write'](fd, data)
        def write_bytes(self, data):
            if point('write_bytes', self): real['write_bytes'](self, bytes(data)[:len(data) // 2]); die()
            return real['write_bytes'](self, data)
        def parquet_write(self, table, *a, **kw):
            if point('parquet_write', self.where if isinstance(self.where, str) else str(self.where)): die()
            return real['parquet_write'](self, table, *a, **kw)
        os.write, Path.write_bytes, pq.ParquetWriter.write_table = write, write_bytes, parquet_write
        compact = RunStore.compact
        RunStore.compact = lambda self, model=None, rows=store.COMPACT_ROWS, min_parts=2: compact(self, model, rows, min_parts)

    def child(job):
        out, err = open(job['stdout'], 'w', buffering=1), open(job['stderr'], 'w', buffering=1)
        os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = out, err
        labels = [] if job.get('labels') else None
        status = 1
        try:
            install(job['run'], job.get('kill_at'), labels, job.get('killed'))
            status = cli.main(job['argv'])
        except SystemExit as e: status = e.code if isinstance(e.code, int) else 1
        except BaseException: traceback.print_exc()
        finally:
            if labels is not None: Path(job['labels']).write_text(json.dumps(labels))
            out.flush(); err.flush()
            os._exit(status)

    print('ready', flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0: child(job)
        _, st = os.waitpid(pid, 0)
        print(json.dumps(-os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)), flush=True)
''')


class Forker:
    "The server: each `run` forks a child that runs the command line in-process, the calls of its writes counted."
    def __init__(self, tmp: Path):
        self.tmp, self.n = tmp, 0
        self.proc = subprocess.Popen([sys.executable, '-c', SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=cli_env(), cwd=Path(__file__).parent.parent)
        assert self.proc.stdout.readline().strip() == 'ready'

    def run(self, argv: list, run: Path, kill_at: int | None = None, labels: bool = False) -> dict:
        "Run `argv` (the command line's arguments) on the run directory `run`: {status, stdout, stderr, labels, killed}."
        self.n += 1
        files = {k: self.tmp / f'{self.n:03d}.{k}' for k in ('stdout', 'stderr', 'labels', 'killed')}
        job = dict(argv=[str(a) for a in argv], run=str(run), kill_at=kill_at, **{k: str(p) for k, p in files.items()})
        if not labels: job['labels'] = None
        self.proc.stdin.write(json.dumps(job) + '\n'); self.proc.stdin.flush()
        out = dict(status=json.loads(self.proc.stdout.readline()))
        for k, p in files.items():
            out[k] = p.read_text() if p.exists() else None
        for k in ('labels', 'killed'):
            if out[k] is not None: out[k] = json.loads(out[k])
        return out

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope='module')
def forker(tmp_path_factory):
    f = Forker(tmp_path_factory.mktemp('forker'))
    yield f
    f.close()


def compare_argv(pair, out: Path) -> list:
    a, b = pair
    return ['--log_level', 'WARNING', 'compare', '--model_paths', a, b, '--model_names', 'A', 'B', '--num_examples', 4,
            '--max_new_tokens', 8, '--batch_size', 1, '--device', 'cpu', '--output_dir', out]


def stratum(label: str) -> str:
    "The kind of a point: 'ledger' (an append, in a part's commit), 'part', 'manifest', 'compaction', 'prompts', … (its context)."
    ctx, op = label.split(' ')[0].split(':')
    return 'ledger' if ctx == 'part' and op.startswith('ledger-') else ctx


def draw(labels: list, seed: int = SEED, n: int = POINTS) -> list:
    "`n` points of range(len(labels)): at least STRATA[kind] of each kind, the rest from those left, sorted."
    rng, kinds = np.random.default_rng(seed), np.array([stratum(l) for l in labels])
    chosen = []
    for kind, k in STRATA.items():
        chosen += list(rng.choice(np.flatnonzero(kinds == kind), size=k, replace=False))
    left = np.setdiff1d(np.arange(len(labels)), chosen)
    chosen += list(rng.choice(left, size=n - len(chosen), replace=False))
    return sorted(int(k) for k in chosen)


def legacy_json(path: Path):
    "The original script's JSON file less what varies run to run (timings)."
    drop = re.compile(r'seconds|per_second|time|completed|created|^at$')
    strip = lambda o: ({k: strip(v) for k, v in o.items() if not drop.search(k)} if isinstance(o, dict)
                       else [strip(v) for v in o] if isinstance(o, list) else o)
    return strip(json.loads(path.read_text()))


def contents(run: Path) -> dict:
    "What a run holds: its rows sorted by their keys, prompts, the original script's files, tables, the manifest's checkpoints."
    st = RunStore(run)
    out = {'tokens': st.read_tokens(), 'generations': st.read_generations(), 'prompts': st.read_prompts()}
    for k, keys in KEYS.items(): out[k] = out[k].sort_values(keys).reset_index(drop=True)
    out['files'] = {p.relative_to(run).as_posix(): p.read_bytes() for p in [*run.glob('*.csv'), *run.glob('tables/*.csv')]}
    out['summary'] = legacy_json(run / 'results_summary.json')
    out['figures'] = sorted(p.name for p in run.glob('*.png'))
    m = st.manifest
    out['manifest'] = dict(models=m['models'], config=m['config'],
                           complete=sorted(k for k, p in m['progress'].items() if p.get('complete')),
                           prompts_done={k: p['prompts_done'] for k, p in m['progress'].items()},
                           tokens={k: p['tokens'] for k, p in m['progress'].items()})
    return out


def differences(run: Path, ref: Path) -> list:
    "What differs between the run and the reference: [] when they are equal."
    a, b, out = contents(run), contents(ref), []
    for k in ('tokens', 'generations', 'prompts'):
        try: pd.testing.assert_frame_equal(a[k], b[k], check_exact=True)
        except AssertionError as e: out.append(f'{k}: {str(e).splitlines()[0]}')
    for k in ('summary', 'figures', 'manifest'):
        if a[k] != b[k]: out.append(f'{k} differs')
    if sorted(a['files']) != sorted(b['files']): out.append(f"files: {sorted(a['files'])} vs {sorted(b['files'])}")
    out += [f'{n} differs' for n in a['files'] if n in b['files'] and a['files'][n] != b['files'][n]]
    out += [f'left behind: {p.relative_to(run)}' for p in run.rglob('*') if '.tmp-' in p.name]
    if (run / 'quarantine').exists(): out.append(f"quarantined: {[p.relative_to(run).as_posix() for p in (run / 'quarantine').rglob('*.parquet')]}")
    return out


def test_draw_is_stratified():
    labels = [f'{c}:{op} x' for c, op in [('part', 'fsync'), ('part', 'ledger-write'), ('manifest', 'replace'),
                                          ('compaction', 'unlink'), ('prompts', 'replace'), ('legacy', 'fsync')] for _ in range(10)]
    pts = draw(labels)
    assert len(pts) == POINTS == len(set(pts)) and pts == sorted(pts) and draw(labels) == pts
    got = pd.Series([stratum(labels[k]) for k in pts]).value_counts()
    assert all(got[k] >= n for k, n in STRATA.items()), got


def test_killed_at_seeded_points_resumes_exactly(tiny_pair, forker, tmp_path):
    start = time.time()
    ref = tmp_path / 'ref'
    r = forker.run(compare_argv(tiny_pair, ref), ref, labels=True)
    assert r['status'] == 0, r['stderr'][-3000:]
    labels = r['labels']
    assert verify_run_dir(ref).sound
    assert all(n.startswith('part-compacted.') for n in os.listdir(ref / 'data/generations/model=A')), 'no compaction happened'
    points = draw(labels)
    kinds = [stratum(labels[k]) for k in points]
    assert all(kinds.count(k) >= n for k, n in STRATA.items()), kinds
    print(f'\n{len(labels)} points (seed {SEED}): {pd.Series([stratum(l) for l in labels]).value_counts().to_dict()}; drawn: {points}')
    report, failed = [], []
    for k in points:
        run = tmp_path / f'kill-{k:03d}'
        killed = forker.run(compare_argv(tiny_pair, run), run, kill_at=k)
        resumed = forker.run(compare_argv(tiny_pair, run), run)
        v = verify_run_dir(run) if resumed['status'] == 0 else None
        problems = [] if killed['status'] == -9 else [f"the killed run ended with {killed['status']}: {killed['stderr'][-500:]}"]
        if killed['killed'] != [k, labels[k]]: problems.append(f"killed at {killed['killed']}, not at {[k, labels[k]]}")
        if resumed['status'] != 0: problems.append(f"resume: exit {resumed['status']}: {resumed['stderr'][-1000:]}")
        elif not v.sound: problems.append(f'verify: {v.problems}')
        else: problems += differences(run, ref)
        if resumed['status'] == 0 and (small := [f'{m}/{n}' for m in ('A', 'B') for n in os.listdir(run / f'data/generations/model={m}') if not n.startswith('part-compacted.')]):
            problems.append(f'parts left uncompacted: {small}')   # a compaction killed before its commit is done by the resume
        said = [l.split(': ', 1)[1].replace(f'{run}/', '') for l in resumed['stderr'].splitlines() if ' WARNING ' in l]
        if alarms := [l for l in said if 'regenerated' in l or 'quarantine' in l]:  # a kill damages no committed part
            problems.append(f'the resume reported lost units: {alarms}')
        report.append(f"{k:4d} {labels[k]:70s} exit {resumed['status']}; {v.summary if v else '-'}; {said or 'no warning'}")
        if problems: failed.append(f'point {k} ({labels[k]}): {problems}')
    print('\n'.join(report))
    assert not failed, '\n'.join(failed)
    r = cli('verify', '--run_dir', tmp_path / f'kill-{points[-1]:03d}')  # once through the command line
    assert r.returncode == 0 and re.fullmatch(r'verified \d+ parts of 2 checkpoints: sound\n', r.stdout), r.stdout + r.stderr
    print(f'{len(points)} kill points in {time.time() - start:.0f} s')
