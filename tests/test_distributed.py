"""Data-parallel runs on CPU: torchrun (gloo) and `accelerate launch` against a one-process run, resume after a
rank is killed, score over ranks, and bad input under a launch. Each launch is a real subprocess."""
import json, os, signal, subprocess, sys, time
from functools import partial
import pandas as pd
import pytest

from reasoning_entropy.store import RunStore
from helpers import cli, cli_popen

PY = sys.executable
TORCHRUN = [PY, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2']
TIMING = {'seconds', 'tokens_per_second', 'completed', 'processes'}


def flags(pair, out, n=12, new=16, bs=1):
    a, b = pair
    # batch size 1: every prompt's floating-point work is the same whatever the shard, so floats match exactly
    return ['compare', '--model_paths', str(a), str(b), '--model_names', 'A', 'B', '--num_examples', str(n),
            '--max_new_tokens', str(new), '--batch_size', str(bs), '--device', 'cpu', '--output_dir', str(out)]


# these commands run at the default log level; each must succeed within 4 minutes
run = partial(cli, log_level=None, timeout=240, check=True)


def tokens(out):
    t = pd.read_parquet(RunStore(out).tokens_dir)
    return t.assign(model=t.model.astype(str)).sort_values(['model', 'prompt_id', 'step'], ignore_index=True)


def summary(out):
    "results_summary.json without timing and process-count fields."
    s = json.loads(RunStore(out).legacy_path('results_summary.json').read_text())
    for m in s['models'].values():
        for k in TIMING: m.pop(k, None); m['progress'].pop(k, None)
    return s


def assert_same_run(a, b):
    pd.testing.assert_frame_equal(tokens(a), tokens(b), check_exact=True)
    sa, sb = RunStore(a), RunStore(b)
    for f in [('token_stats', 'A'), ('token_stats', 'B'), ('prompt_level_results.csv',)]:
        assert sa.legacy_path(*f).read_bytes() == sb.legacy_path(*f).read_bytes(), sa.legacy_path(*f).name
    assert summary(a) == summary(b)


@pytest.fixture(scope='module')
def one_proc(tiny_pair, tmp_path_factory):
    "The reference: the same run in one plain process."
    out = tmp_path_factory.mktemp('dist') / 'one'
    run(*flags(tiny_pair, out))
    return out


def test_torchrun_two_ranks_equal_one_process(tiny_pair, one_proc, tmp_path):
    out = tmp_path / 'two'
    r = run(*flags(tiny_pair, out), prefix=TORCHRUN)
    assert r.stdout.count('results:') == 1  # rank 0 speaks for the run
    st = RunStore(out)
    parts = sorted(p.name for p in (st.tokens_dir / 'model=A').iterdir())
    assert any(p.startswith('part-r1-') for p in parts) and any(p.startswith('part-0') for p in parts), parts
    assert_same_run(one_proc, out)
    # the ranks' parts add up to exactly the one-process token count, and the manifest says so
    man = json.loads(st.manifest_path.read_text())
    for m in 'AB':
        pr = man['progress'][m]
        assert (pr['complete'], pr['processes'], pr['prompts_done']) == (True, 2, 12)
        assert pr['tokens'] == int((tokens(one_proc).model == m).sum())
        assert pr['tokens_per_second'] == pytest.approx(pr['tokens'] / pr['seconds'])
    # score over two ranks equals score in one process
    run('score', '--run_dir', out, '--device', 'cpu', prefix=TORCHRUN)
    run('score', '--run_dir', one_proc, '--device', 'cpu')
    s1, s2 = RunStore(one_proc).read_scored(), RunStore(out).read_scored()
    assert len(s1) == len(tokens(one_proc)) and len(s1) > 0
    pd.testing.assert_frame_equal(s1, s2, check_exact=True)
    assert sorted(p.name for p in (st.scored_dir / 'model=B').iterdir()) == ['part-00000.parquet', 'part-r1-00000.parquet']  # rank 0 names its parts as a lone process does
    state = json.loads(st.scoring_state_path.read_text())
    assert {m: (d['tokens'], d['processes']) for m, d in state['done'].items()} == {m: (int((s1.model == m).sum()), 2) for m in 'AB'}


def _ranks_of(pid):
    "{RANK: pid} of the worker processes under a torchrun process."
    import psutil
    out = {}
    for c in psutil.Process(pid).children(recursive=True):
        try: rank = c.environ().get('RANK')
        except (psutil.NoSuchProcess, psutil.AccessDenied): continue
        if rank is not None: out[int(rank)] = c.pid
    return out


@pytest.mark.parametrize('victim', [1])
def test_kill_one_rank_then_resume(tiny_pair, one_proc, tmp_path, victim):
    out = tmp_path / 'killed'
    st = RunStore(out)
    p = cli_popen(*flags(tiny_pair, out), log_level=None, prefix=TORCHRUN, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    gdir = st.generations_dir / 'model=A'
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:  # wait until both ranks have committed some batches
        names = [f.name for f in gdir.iterdir()] if gdir.is_dir() else []
        if sum(n.startswith('part-r1-') for n in names) >= 2 and sum(n.startswith('part-0') for n in names) >= 2: break
        time.sleep(0.05)
    assert p.poll() is None, 'the run ended before it could be killed'
    ranks = _ranks_of(p.pid)
    assert sorted(ranks) == [0, 1], ranks
    os.kill(ranks[victim], signal.SIGKILL)
    _, err = p.communicate(timeout=120)
    assert p.returncode != 0  # torchrun stops the other rank and fails
    done = len(pd.read_parquet(st.generations_dir))
    assert 0 < done < 24, done  # the kill came mid-run
    assert not st.legacy_path('results_summary.json').exists()
    run(*flags(tiny_pair, out), prefix=TORCHRUN)  # the same command again resumes
    assert_same_run(one_proc, out)
    assert len(pd.read_parquet(st.generations_dir)) == 24  # every (model, prompt) once


def test_resume_with_one_process_after_two(tiny_pair, one_proc, tmp_path):
    "A run started with two ranks and finished by one process: shards may change, nothing is lost or doubled."
    out = tmp_path / 'mixed'
    a, b = tiny_pair
    run(*flags((a, b), out), prefix=TORCHRUN)
    # forget checkpoint B's second half as if the run had been killed there, and leave an uncommitted rank-1 part
    st = RunStore(out)
    gd, td = st.generations_dir / 'model=B', st.tokens_dir / 'model=B'
    r1 = sorted(gd.glob('part-r1-*.parquet'))
    for f in r1[len(r1) // 2:]: f.unlink()
    man = json.loads(st.manifest_path.read_text())
    man['progress']['B']['complete'] = False
    st.manifest_path.write_text(json.dumps(man))
    run(*flags((a, b), out))
    assert not [f for f in td.iterdir() if not (gd / f.name).exists()]  # the orphaned rank-1 tokens parts are gone
    assert_same_run(one_proc, out)


def test_accelerate_launch(tiny_pair, one_proc, tmp_path):
    pytest.importorskip('accelerate')
    out = tmp_path / 'acc'
    run(*flags(tiny_pair, out), prefix=[PY, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
                                        '--mixed_precision', 'no', '--dynamo_backend', 'no'])
    assert any(p.name.startswith('part-r1-') for p in (RunStore(out).tokens_dir / 'model=A').iterdir())
    assert_same_run(one_proc, out)


def test_bad_input_under_a_launch(tiny_pair, tmp_path):
    a, _ = tiny_pair
    out = tmp_path / 'bad'
    r = cli('compare', '--model_paths', a, tmp_path / 'typo', '--model_names', 'A', 'B', '--device', 'cpu', '--output_dir', out,
            log_level=None, prefix=TORCHRUN, timeout=120)
    assert r.returncode != 0
    msg = f'reasoning-entropy compare: error: --model_paths: {tmp_path / "typo"}: no such directory\n'
    assert r.stderr.count(msg) == 1, r.stderr[-2000:]  # printed once (rank 0), whatever torchrun adds
    assert 'exitcode  : 2' in r.stderr  # every rank exited with the input-error status
    assert not out.exists()


def test_two_nodes_one_process_each_with_device_map(tiny_pair, one_proc, tmp_path):
    "The multi-node launch line (static rendezvous), simulated by two torchrun agents on this machine, one process"
    " each, with --device_map auto (allowed: one process per node)."
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    out = tmp_path / 'nodes'
    nodes = [[PY, '-m', 'torch.distributed.run', '--nnodes', '2', '--nproc_per_node', '1', '--node_rank', str(r),
              '--master_addr', '127.0.0.1', '--master_port', str(port)] for r in (0, 1)]
    ps = [cli_popen(*flags(tiny_pair, out), '--device_map', 'auto', log_level=None, prefix=node,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for node in nodes]
    res = [p.communicate(timeout=240) for p in ps]
    assert [p.returncode for p in ps] == [0, 0], res[0][1][-2000:] + res[1][1][-2000:]
    assert any(p.name.startswith('part-r1-') for p in (RunStore(out).tokens_dir / 'model=B').iterdir())
    assert_same_run(one_proc, out)
