"""Faults while a run is written, through the command line: a second writer (refused at once naming the holder, or
waiting with --wait), a full disk / quota / read-only file system / permission / I/O error (one line, exit 1, the
same command resumes), and SIGTERM / SIGINT (stop at a batch boundary, exit 143 / 130; a second signal stops at
once). Every interrupted run, resumed, equals the run that was never interrupted."""
import errno, os, re, signal, socket, subprocess, sys, tempfile, time
from pathlib import Path

import pandas as pd
import pytest

from reasoning_entropy import cli as cli_module
from reasoning_entropy.runlock import RunLock
from reasoning_entropy.store import RunStore
from helpers import cli, cli_popen


def compare_args(pair, out, n=12, new=24, bs=2):
    a, b = pair
    return ['compare', '--model_paths', a, b, '--model_names', 'A', 'B', '--num_examples', n, '--max_new_tokens', new,
            '--batch_size', bs, '--device', 'cpu', '--output_dir', out]


def state(out: Path) -> tuple:
    "What a run holds: its tokens and generations (store order) and the original script's per-prompt file."
    st = RunStore(out)
    return st.read_tokens(), st.read_generations(), st.legacy_path('prompt_level_results.csv').read_text()


def assert_same(out: Path, ref: Path):
    a, b = state(out), state(ref)
    pd.testing.assert_frame_equal(a[0], b[0], check_exact=True)
    pd.testing.assert_frame_equal(a[1], b[1], check_exact=True)
    assert a[2] == b[2]


def temporaries(out: Path) -> list:
    return [p for p in out.rglob('*') if '.tmp-' in p.name]


@pytest.fixture(scope='module')
def reference(tiny_pair, tmp_path_factory):
    "The run never interrupted."
    out = tmp_path_factory.mktemp('faults') / 'ref'
    r = cli(*compare_args(tiny_pair, out), timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def first_commit(proc, out: Path, model='A', timeout=120):
    "Wait until `proc` has committed a batch of `model`, then stop it there (SIGSTOP), so what follows happens mid-run."
    parts = RunStore(out).generations_dir / f'model={model}'
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if parts.is_dir() and any(parts.glob('part-*.parquet')): break
        time.sleep(0.01)
    assert proc.poll() is None, 'the run ended before it could be stopped'
    os.kill(proc.pid, signal.SIGSTOP)


def start(*args, **kw):
    "The command line in a subprocess, SIGINT at its default (a job started in the background inherits it ignored)."
    return cli_popen(*args, log_level='WARNING', stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def read_until(stream, needle: str, timeout=60) -> str:
    "Lines of `stream` up to the one holding `needle`."
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = stream.readline()
        if not line: break
        seen.append(line)
        if needle in line: return ''.join(seen)
    raise AssertionError(f'{needle!r} never came; got: {"".join(seen)[-2000:]}')


def test_second_writer_refused_then_waits(tiny_pair, reference, tmp_path):
    out = tmp_path / 'run'
    args = compare_args(tiny_pair, out)
    holder = start(*args)
    first_commit(holder, out)
    try:
        r = cli(*args, log_level=None, timeout=120)  # a second writer, while the first is mid-run
        assert r.returncode == 2, r.stderr[-2000:]
        line = r.stderr.strip().splitlines()[-1]
        assert re.fullmatch(rf'reasoning-entropy compare: error: {re.escape(str(out))} is being written by PID {holder.pid} on host '
                            rf'{re.escape(socket.gethostname())} \(reasoning-entropy --log_level WARNING compare --model_paths .*, since '
                            r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\); wait for it, or pass --wait', line), line
        assert 'Traceback' not in r.stderr and 'results:' not in r.stdout
        waiter = start(*args, '--wait')
        read_until(waiter.stderr, 'waiting for it to finish (--wait)')
    finally: os.kill(holder.pid, signal.SIGCONT)
    assert holder.wait(timeout=240) == 0
    assert waiter.wait(timeout=240) == 0, waiter.stderr.read()[-2000:]
    assert not (out / '.lock').exists() and not temporaries(out)
    assert_same(out, reference)
    writers = [i for i in RunStore(out).invocations]
    assert [i['pid'] for i in writers] == [holder.pid, waiter.pid] and all(i['host'] == socket.gethostname() for i in writers)


@pytest.mark.parametrize('sig,status', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_at_a_batch_boundary_and_resumes(tiny_pair, reference, tmp_path, sig, status):
    out = tmp_path / 'run'
    args = compare_args(tiny_pair, out)
    p = start(*args)
    first_commit(p, out)
    p.send_signal(sig); os.kill(p.pid, signal.SIGCONT)
    _, err = p.communicate(timeout=240)
    assert p.returncode == status, err[-2000:]
    lines = err.strip().splitlines()
    name = signal.Signals(sig).name
    assert f'{name}: stopping at the next batch boundary (a second {name} stops at once)' in err
    print(lines[-1])
    assert re.fullmatch(rf'reasoning-entropy compare: stopped by {name} after (\d+) of 24 units; run the same command to resume', lines[-1]), lines[-1]
    done = int(re.search(r'after (\d+) of', lines[-1]).group(1))
    st = RunStore(out)
    assert 0 < done < 24 and done == len(st.done_units('A')) + len(st.done_units('B'))  # every committed unit is counted
    assert 'Traceback' not in err and not temporaries(out) and not (out / '.lock').exists()
    r = cli(*args, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert_same(out, reference)


@pytest.fixture(scope='module')
def long_batches(tiny_pair, tmp_path_factory):
    "(the arguments of a run of long batches, so that a second signal comes before the boundary; its uninterrupted run)."
    ref = tmp_path_factory.mktemp('faults') / 'ref-long'
    args = lambda out: compare_args(tiny_pair, out, n=48, new=160, bs=24)  # batch size changes floats in the last bits: its own reference
    assert cli(*args(ref), timeout=240).returncode == 0
    return args, ref


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_second_signal_stops_at_once(long_batches, tmp_path, sig):
    args, ref = long_batches
    out = tmp_path / 'run'
    p = start(*args(out))
    first_commit(p, out)
    p.send_signal(sig); os.kill(p.pid, signal.SIGCONT)
    read_until(p.stderr, 'stopping at the next batch boundary')
    p.send_signal(sig)
    _, err = p.communicate(timeout=240)
    st = RunStore(out)
    assert len(st.done_units('A')) == 24 and not st.done_units('B')  # stopped within the second batch (24 prompts of 160 tokens), not at its boundary
    if sig == signal.SIGTERM: assert p.returncode == -signal.SIGTERM  # the default action: killed at once (status 143 in a shell)
    else:
        assert p.returncode == 130, err[-2000:]
        assert err.strip().splitlines()[-1] == ('reasoning-entropy compare: interrupted (SIGINT); the run is intact up to the '
                                                'last committed batch: run the same command to resume')
        assert 'Traceback' not in err and not temporaries(out)
    for m in 'AB':  # no half-written part: every tokens part has its generations part
        assert {f.name for f in (st.tokens_dir / f'model={m}').glob('part-*')} == {f.name for f in (st.generations_dir / f'model={m}').glob('part-*')}
    r = cli(*args(out), timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert_same(out, ref)


FAULTS = [  # (errno, where it strikes, the cause and the remedy the line gives)
    (errno.ENOSPC, 'fsync', 'no space left on device', 'free space'),
    (errno.EDQUOT, 'fsync', 'disk quota exceeded', 'free space or raise the quota'),
    (errno.EROFS, 'mkstemp', 'read-only file system', 'make it writable'),
    (errno.EACCES, 'mkstemp', 'permission denied', 'fix the permissions'),
    (errno.EIO, 'fsync', 'input/output error', 'check the disk'),
]


def inject(monkeypatch, code, where) -> list:
    """Make the third tokens part written meet `code`: at `fsync` (as the kernel reports a full disk or an I/O error: no
    file name) or at `mkstemp` (as a read-only or forbidden directory refuses the temporary file: named). Returns the
    paths met so far (the last one is where the fault struck)."""
    real, seen = getattr(os if where == 'fsync' else tempfile, where), []
    def faulty(*a, **kw):
        target = os.readlink(f'/proc/self/fd/{a[0]}') if where == 'fsync' else str(kw.get('dir'))
        if '/data/tokens/' in target + '/' and not (where == 'fsync' and os.path.isdir(target)):   # a part's file, not its directory's fsync
            seen.append(target if where == 'fsync' else os.path.join(target, kw.get('prefix', '') + 'abc' + kw.get('suffix', '')))
            if len(seen) == 3: raise OSError(code, os.strerror(code), *([] if where == 'fsync' else [seen[-1]]))
        return real(*a, **kw)
    monkeypatch.setattr(os if where == 'fsync' else tempfile, where, faulty)
    return seen


@pytest.fixture
def one_thread():
    "An in-process run with one thread, as every CLI subprocess of the tests (`cli_env`), so its floats equal the reference's to the bit."
    import torch
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize('code,where,cause,fix', FAULTS, ids=[errno.errorcode[f[0]] for f in FAULTS])
def test_disk_fault_is_one_line_and_resumes(tiny_pair, reference, tmp_path, capsys, monkeypatch, one_thread, code, where, cause, fix):
    out = tmp_path / 'run'
    args = ['--log_level', 'ERROR', *map(str, compare_args(tiny_pair, out))]
    seen = inject(monkeypatch, code, where)
    status = cli_module.main(args)
    err = capsys.readouterr().err
    assert status == 1, err[-2000:]
    # the path the exception names; an fsync error names none, and the line names the run (or the file, once the store adds it)
    ats = [f'writing {seen[-1]}'] + ([f'writing under {out}'] if where == 'fsync' else [])
    line = err.strip().splitlines()[-1]
    assert line in [f'reasoning-entropy compare: error: {cause} {at}; the run is intact up to the last committed batch: {fix} and '
                    'run the same command to resume' for at in ats], line
    assert 'Traceback' not in err and not temporaries(out) and not (out / '.lock').exists()
    assert len(RunStore(out).done_units('A')) == 4  # two batches of two committed: the run is whole up to its last commit
    if code == errno.ENOSPC:
        seen.clear()
        monkeypatch.setenv('REASONING_ENTROPY_DEBUG', '1')  # the same fault, with its traceback
        assert cli_module.main(args) == 1 and 'Traceback' in capsys.readouterr().err
    monkeypatch.undo()
    assert cli_module.main(args) == 0  # the cause gone, the same command finishes the run
    assert_same(out, reference)


def test_score_is_a_writer_unless_everything_is_scored(reference, tmp_path, capsys):
    import shutil
    run = tmp_path / 'run'; shutil.copytree(reference, run)
    score = ['--log_level', 'ERROR', 'score', '--run_dir', str(run), '--device', 'cpu']
    lock = RunLock(run).acquire()  # another writer holds the run (this process, through another open file: flock keeps them apart)
    try:
        assert cli_module.main(score) == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith(f'reasoning-entropy score: error: {run} is being written by PID {os.getpid()} on host {socket.gethostname()} (')
        assert line.endswith('); wait for it, or pass --wait')
    finally: lock.release()
    n_before = len(RunStore(run).invocations)
    assert cli_module.main(score) == 0 and RunStore(run).scoring_state()['done'].keys() == {'A', 'B'}
    rec = RunStore(run).invocations[-1]   # the manifest records every invocation that wrote
    assert len(RunStore(run).invocations) == n_before + 1 and rec['wrote'] == 'aligned scores' and rec['pid'] == os.getpid()
    assert sorted(rec['models']) == ['A', 'B'] and rec['host'] == socket.gethostname()
    lock = RunLock(run).acquire()
    try: assert cli_module.main(score) == 0  # everything scored: score writes nothing, takes no lock, and succeeds beside a writer
    finally: lock.release()
    assert len(RunStore(run).invocations) == n_before + 1   # a reader records nothing
