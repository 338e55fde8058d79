"""Sampled runs (--do_sample --num_samples 4 --seed 7) are reproducible per (prompt, sample): the same tokens with
batch size 1 and 7, after a kill and a resume, and with torchrun over 2 processes. Each run is a real subprocess.

Another batch size changes the logits by float32 rounding (~1e-7), so a draw whose uniform number lies within that
of the boundary between two tokens can flip; such a flip is allowed only where it is proven (in float64) to be one."""
import json, os, signal, subprocess, sys, time
from functools import partial
import pandas as pd

from reasoning_entropy.store import RunStore
from helpers import cli, cli_popen

PY = sys.executable
SAMPLED = ['--do_sample', '--num_samples', '4', '--seed', '7']


def args(pair, out, bs, n=6, new=12):
    a, b = pair
    return ['compare', '--model_paths', str(a), str(b), '--model_names', 'A', 'B', '--num_examples', str(n), '--max_new_tokens',
            str(new), '--batch_size', str(bs), '--device', 'cpu', '--output_dir', str(out), *SAMPLED]


# these commands run at the default log level; each must succeed within 4 minutes unless told otherwise
run = partial(cli, log_level=None, timeout=240, check=True)


def generated(out):
    "(model, prompt_id, sample) -> generated token ids."
    g = RunStore(out).read_generations()
    return {(m, p, s): list(t) for m, p, s, t in zip(g.model, g.prompt_id, g['sample'], g.generated_token_ids)}


def boundary_flip(ckpt, prompt_ids, a, b, pid, sample):
    """Whether sampled generations `a` and `b` first differ where the draw's uniform lies within 1e-5 of the boundary
    between the two tokens drawn (float32 noise of another batch composition crossing it), checked in float64."""
    import torch
    from transformers import AutoModelForCausalLM
    from reasoning_entropy.engine import _stream
    i = next(j for j in range(min(len(a), len(b))) if a[j] != b[j])
    m = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float64)
    with torch.inference_mode(): p = m(input_ids=torch.tensor([list(prompt_ids) + list(a[:i])])).logits[0, -1].softmax(-1)
    lo, hi = sorted((int(a[i]), int(b[i])))
    u = float(_stream(7, pid, sample, i + 1)[i])
    return abs(float(p[:lo + 1].sum()) - u) < 1e-5 and float(p[lo + 1:hi].sum()) < 1e-9


def same_samples(run, ref, pair, names=('A', 'B')):
    """`run`'s generated tokens equal `ref`'s, except where a float32 boundary flip explains the difference
    (`boundary_flip`, at most 2 of the run's generations)."""
    got, want = generated(run), generated(ref)
    assert got.keys() == want.keys()
    diff = [k for k in want if got[k] != want[k]]
    g = RunStore(ref).read_generations()
    prompt = {(m_, p_, s_): ids for m_, p_, s_, ids in zip(g.model, g.prompt_id, g['sample'], g.prompt_token_ids)}
    ck = dict(zip(names, pair))
    assert len(diff) <= 2 and all(boundary_flip(ck[k[0]], prompt[k], want[k], got[k], k[1], k[2]) for k in diff), diff


def test_batch_size_and_torchrun_do_not_change_samples(tiny_pair, tmp_path):
    one, seven, two = tmp_path / 'bs1', tmp_path / 'bs7', tmp_path / 'torchrun2'
    run(*args(tiny_pair, one, 1))
    run(*args(tiny_pair, seven, 7))
    run(*args(tiny_pair, two, 1), prefix=[PY, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2'])
    ref = generated(one)
    assert len(ref) == 2 * 6 * 4 and {k[2] for k in ref} == {0, 1, 2, 3}
    same_samples(seven, one, tiny_pair)  # another batch size: the same samples, bar a float32 flip at a CDF boundary
    assert generated(two) == ref        # the same batch size over 2 processes: the same samples, the same floats (below)
    assert any(p.name.startswith('part-r1-') for p in (RunStore(two).generations_dir / 'model=A').iterdir())
    pd.testing.assert_frame_equal(RunStore(one).read_tokens(), RunStore(two).read_tokens(), check_exact=True)  # same batch size: same floats
    assert len({tuple(v) for k, v in ref.items() if k[:2] == ('A', '0')}) > 1  # the samples of a prompt differ


def test_kill_and_resume_keeps_samples(tiny_pair, tmp_path):
    ref, out = tmp_path / 'ref', tmp_path / 'killed'
    run(*args(tiny_pair, ref, 2, n=8, new=24))
    p = cli_popen(*args(tiny_pair, out, 2, n=8, new=24), log_level=None, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = RunStore(out).generations_dir / 'model=A'
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if parts.is_dir() and len(list(parts.glob('part-*.parquet'))) >= 3: break
        time.sleep(0.02)
    assert p.poll() is None, 'the run ended before it could be killed'
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert 0 < len(RunStore(out).read_generations()) < 2 * 8 * 4
    run(*args(tiny_pair, out, 2, n=8, new=24))
    assert generated(out) == generated(ref)
    pd.testing.assert_frame_equal(RunStore(out).read_tokens(), RunStore(ref).read_tokens(), check_exact=True)
    assert RunStore(out).legacy_path('prompt_level_results.csv').read_bytes() == RunStore(ref).legacy_path('prompt_level_results.csv').read_bytes()


def test_sampled_demo_report_shows_pass_at_k(demo_checkpoints, tmp_path):
    "The demo's checkpoint series, sampled (what `reasoning-entropy demo --do_sample --num_samples 4` runs): the report has the pass@k curve."
    out = tmp_path / 'sampled_demo'
    run('report', '--model_paths', *demo_checkpoints, '--do_sample', '--num_samples', '4',
        '--seed', '7', '--num_examples', '6', '--max_new_tokens', '48', '--output_dir', out, timeout=400)
    store = RunStore(out)
    from reasoning_entropy.checkpoints import checkpoint_step
    assert store.steps == {p.name: checkpoint_step(p) for p in demo_checkpoints}  # the real training steps (trainer_state.json)
    pk = pd.read_csv(store.table_path('pass_at_k'))
    assert sorted(set(pk.k)) == [1, 2, 4] and set(pk.model) == set(store.models)
    assert store.figure_path('pass_at_k').stat().st_size > 10_000
    summary = json.loads(store.legacy_path('results_summary.json').read_text())
    assert all(set(v['pass_at_k']) == {'1', '2', '4'} and v['num_samples'] == 4 for v in summary['models'].values())
