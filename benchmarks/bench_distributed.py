"""Data-parallel benchmark: `reasoning-entropy compare` in 1 process vs 2 processes under torchrun (gloo, CPU).

Mid-sized random Qwen2 (hidden 512, 4 layers, 32k vocabulary; the model builder of bench_engine.py), two
checkpoints, the same prompts, greedy, one torch thread per process (OMP_NUM_THREADS=1). Reports the aggregate
tokens/s recorded in each run's manifest (tokens over the generation wall time; for 2 processes the time
between the ranks' barriers), the whole-command wall time, the speed-up, and checks that the ranks' parts add
up to exactly the one-process run's tokens. Appends (or replaces) its section of benchmarks/RESULTS.md.

Usage: python benchmarks/bench_distributed.py [--quick] [--repeats 2] [--workdir DIR]
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_engine import build, V, HIDDEN, LAYERS  # the same mid-sized model as the engine benchmark



def prepare(path: Path, seed: int) -> Path:
    """bench_engine's model, with a text tokenizer: bench_engine feeds token ids directly, and its word-level
    tokenizer does not survive `AutoTokenizer` (a qwen2 checkpoint always gets Qwen2Tokenizer), so the
    checkpoint gets the byte-level BPE tokenizer (Qwen split, ChatML template) of `testing.make_tiny_checkpoint`;
    ids beyond it decode to ''."""
    from transformers import AutoTokenizer
    from reasoning_entropy.testing import make_tiny_checkpoint
    if (path / '.text_tokenizer').exists(): return path
    build(path, seed)
    tiny = make_tiny_checkpoint(path.parent / 'tokenizer-src', tokenizer_vocab=2000)
    for f in path.glob('*'):
        if f.name.startswith(('tokenizer', 'special_tokens', 'vocab', 'merges', 'chat_template')): f.unlink()
    AutoTokenizer.from_pretrained(tiny).save_pretrained(path)
    (path / '.text_tokenizer').write_text('')
    return path

WORDS = ('The answer is 42 because 6 times 7 . Let me think step by step about this problem First we add the numbers '
         'Then divide two What 3 + 4 ? It So total 15 apples and pears wait maybe not').split()

def write_data(path: Path, n: int, seed: int = 0) -> Path:
    "n conversations whose user turn is 12-48 random words (about 16-64 tokens with the chat template)."
    g = np.random.default_rng(seed)
    with open(path, 'w') as f:
        for i in range(n):
            words = ' '.join(g.choice(WORDS, size=int(g.integers(12, 49))))
            f.write(json.dumps({'conversations': [{'role': 'user', 'content': words}]}) + '\n')
    return path


def run_compare(nproc: int, ckpts, data, out, n, new, bs) -> float:
    "Run compare (plain for 1 process, torchrun otherwise); return the command's wall time."
    args = ['-m', 'reasoning_entropy', 'compare', '--model_paths', *map(str, ckpts), '--model_names', 'A', 'B',
            '--data_path', str(data), '--num_examples', str(n), '--max_new_tokens', str(new), '--batch_size', str(bs),
            '--device', 'cpu', '--output_dir', str(out), '--overwrite']
    cmd = [sys.executable, *args] if nproc == 1 else [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                                                      '--nproc_per_node', str(nproc), *args]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'TOKENIZERS_PARALLELISM': 'false'}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode: raise SystemExit(f'{cmd} failed:\n{r.stderr[-3000:]}')
    return time.perf_counter() - t0


def measure(out: Path) -> dict:
    man = json.loads((out / 'run_manifest.json').read_text())['progress']
    tok = sum(p['tokens'] for p in man.values()); sec = sum(p['seconds'] for p in man.values())
    return dict(tokens=tok, seconds=sec, tok_s=tok / sec)


def load_avg() -> str:
    return open('/proc/loadavg').read().split()[:3].__str__() if os.path.exists('/proc/loadavg') else '?'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true'); ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--workdir', default=None)
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix='bench_dist_'))
    ckpts = [prepare(work / f'ckpt-{i}', i) for i in range(2)]
    n, new, bs = (16, 16, 8) if a.quick else (64, 64, 16)
    data = write_data(work / 'data.jsonl', n)
    rows, loads = [], []
    for rep in range(a.repeats):
        for nproc in (1, 2):
            loads.append(load_avg())
            wall = run_compare(nproc, ckpts, data, work / f'run{nproc}', n, new, bs)
            rows.append(dict(rep=rep, nproc=nproc, wall=wall, **measure(work / f'run{nproc}')))
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    best = df.groupby('nproc').tok_s.max()
    ratio, ratios = best[2] / best[1], [df[(df.rep == r) & (df.nproc == 2)].tok_s.iloc[0] / df[(df.rep == r) & (df.nproc == 1)].tok_s.iloc[0] for r in range(a.repeats)]
    wall_ratio = df[df.nproc == 1].wall.min() / df[df.nproc == 2].wall.min()
    # the ranks' parts vs the one-process run: same token count, same generated ids
    def tok(out):
        t = pd.read_parquet(out / 'data' / 'tokens', columns=['model', 'prompt_id', 'step', 'token_id', 'entropy'])
        return t.assign(model=t.model.astype(str)).sort_values(['model', 'prompt_id', 'step'], ignore_index=True)
    t1, t2 = tok(work / 'run1'), tok(work / 'run2')
    parts = sorted({p.name.split('-')[1] if p.name.startswith('part-r') else 'r0' for p in (work / 'run2/data/tokens').rglob('part-*.parquet')})
    g1 = pd.read_parquet(work / 'run1/data/generations'); g2 = pd.read_parquet(work / 'run2/data/generations')
    key = lambda g: {(str(m), p): list(x) for m, p, x in zip(g.model, g.prompt_id, g.generated_token_ids)}
    k1, k2 = key(g1), key(g2)
    same_seq = sum(k1[k] == k2.get(k) for k in k1)
    same_len = len(t1) == len(t2)
    dmax = float((t1.entropy - t2.entropy).abs().max()) if same_len and (t1.token_id.values == t2.token_id.values).all() else float('nan')
    cpu = next((l.split(':', 1)[1].strip() for l in subprocess.run(['lscpu'], capture_output=True, text=True).stdout.splitlines()
                if l.startswith('Model name')), '?')
    import torch
    date = subprocess.run(['date'], capture_output=True, text=True).stdout.strip()
    ok = lambda b: 'PASS' if b else 'FAIL'
    lines = ['## Data-parallel (torchrun, CPU)', '',
             f'Machine: {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, no GPU. Date: {date}.',
             f'Model: random Qwen2, hidden {HIDDEN}, {LAYERS} layers, vocabulary {V}, float32, 2 checkpoints; {n} prompts of '
             f'12-48 words, {new} new tokens, greedy, batch size {bs}, OMP_NUM_THREADS=1 (one thread per process). '
             f'1 process: `python -m reasoning_entropy compare …`; 2 processes: `torchrun --standalone --nproc_per_node 2 -m reasoning_entropy compare …`.',
             f'Command: `python benchmarks/bench_distributed.py{" --quick" if a.quick else ""} --repeats {a.repeats}`. '
             f'Load average (1/5/15 min) before each run, which includes this benchmark\'s previous run: {", ".join(loads)}.', '',
             '| run | processes | tokens | generation wall s | tokens/s (aggregate) | whole command s |', '|---|---|---|---|---|---|']
    lines += [f'| {r.rep + 1} | {r.nproc} | {r.tokens} | {r.seconds:.1f} | {r.tok_s:.1f} | {r.wall:.1f} |' for r in df.itertuples()]
    lines += ['', '| measure | value | target | |', '|---|---|---|---|',
              f'| 2 processes / 1 process, tokens/s (best of {a.repeats} each) | {ratio:.2f}× | ≥ 1.7× | {ok(ratio >= 1.7)} |',
              f'| same, per repeat | {", ".join(f"{x:.2f}×" for x in ratios)} | | |',
              f'| 2 / 1, whole command (model loading, planning, seed files included) | {wall_ratio:.2f}× | | |',
              f"| ranks' parts add up to the 1-process token count | {len(t2)} vs {len(t1)} | equal | {ok(same_len)} |",
              f'| generated sequences identical to the 1-process run | {same_seq}/{len(k1)} | | |', '',
              f'Part files of the 2-process run: {", ".join(parts)} (rank 0 writes `part-NNNNN`, rank R `part-rR-NNNNN`). Max |Δentropy| between the runs: {dmax:.2e} nats '
              '(batches are composed differently per shard, so float32 rounding differs; ids are identical).', '',
              '- tokens/s is what the manifest records: tokens over generation time (1 process: the sum of batch times; '
              '2 processes: the wall time between the barrier after every rank loaded its model and the barrier after every '
              'rank committed its shard, so waiting for the slower rank counts against the 2-process run).',
              '- The machine has 2 cores, so 2 processes × 1 thread is the most parallelism available; other work on the '
              'machine during a run shows as a lower ratio (see the load averages).']
    sys.path.insert(0, str(HERE)); from _results import write_section
    section = write_section('bench_distributed', '\n'.join(lines))
    print(section)


if __name__ == '__main__':
    main()
