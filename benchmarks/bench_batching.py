"""Continuous batching: the engine (rows leave at EOS, waiting prompts take their slots) against plain batched
`model.generate`, on a workload whose generation lengths spread from 10% to 100% of `max_new_tokens`, CPU.

Model: `bench_engine.build`'s random Qwen2 (hidden 512, 4 layers, 32k vocabulary); prompts `bench_engine.make_prompts`
(16-64 tokens). A random model never emits its EOS, so the workload gives it EOS ids that end each prompt at a chosen
step: every prompt is first decoded without EOS (greedy, 256 tokens); each gets a target length drawn uniformly from
26-256; the token it generates at that step becomes an EOS id (unless it already occurs earlier in that prompt). Both
paths then decode with the same EOS ids, so each prompt stops at the first of them it meets (lengths reported).
Paths, each in its own process (peak RSS from ru_maxrss), the same batch size:
- engine: `reasoning_entropy.engine.generate` (metrics at every step, `top_k_alternatives=5`), continuous batching;
- plain: `model.generate(..., do_sample=False, eos_token_id=EOS)` without metrics, length-sorted batches.
Same tokens are checked (each plain row cut after its first EOS id). Useful tokens/s = generated tokens (up to and
including EOS) / seconds. Fixed-length controls (no EOS, every row runs to the limit: the same 256 new tokens, and
the 64 of `bench_engine`) check that nothing regressed where there is nothing to compact.
Writes its section `batching` of benchmarks/RESULTS.md.
  python benchmarks/bench_batching.py [--threads 1] [--prompts 64] [--batch 16] [--new 256] [--fixed_new 256,64] [--repeats 3] [--quick]
"""
from __future__ import annotations
import argparse, json, os, platform, resource, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_engine import HIDDEN, LAYERS, V, build, make_prompts, _warm, busy_cpus, load_avg, publish

def _model(ck, eos):
    from reasoning_entropy.checkpoints import load_checkpoint, Checkpoint
    m, t = load_checkpoint(Checkpoint('bench', ck), device='cpu')
    m.generation_config.eos_token_id = eos or None; m.config.eos_token_id = eos or None
    if not eos: t.eos_token = None
    _warm(m)
    return m, t

def child(a):
    "One timed path in this process: prints JSON (seconds, cpu, tokens, ids, peak RSS MiB)."
    torch.set_num_threads(a.threads)
    eos = json.loads(a.eos)
    m, t = _model(Path(a.ck), eos)
    prompts = make_prompts(a.prompts)
    from reasoning_entropy.engine import DecodingConfig, generate
    ids = {}
    c0, t0 = time.process_time(), time.perf_counter()
    if a.child == 'engine':
        for _, g in generate(m, t, prompts, DecodingConfig(max_new_tokens=a.new), batch_size=a.batch, top_k_alternatives=5, progress=False):
            ids.update({r.prompt_id: list(map(int, r.generated_token_ids)) for r in g.itertuples()})
    else:
        order = sorted(prompts, key=lambda p: -len(p.token_ids)); stop = set(eos)
        for i in range(0, len(order), a.batch):
            b = order[i:i + a.batch]; L = max(len(p.token_ids) for p in b)
            x = torch.tensor([[0] * (L - len(p.token_ids)) + p.token_ids for p in b])
            att = torch.tensor([[0] * (L - len(p.token_ids)) + [1] * len(p.token_ids) for p in b])
            with torch.inference_mode():
                out = m.generate(input_ids=x, attention_mask=att, max_new_tokens=a.new, do_sample=False, pad_token_id=0,
                                 eos_token_id=eos or None)
            for p, row in zip(b, out[:, L:].tolist()):
                cut = next((j + 1 for j, v in enumerate(row) if v in stop), len(row))
                ids[p.prompt_id] = row[:cut]
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps(dict(seconds=dt, cpu=cpu, tokens=sum(map(len, ids.values())), ids=ids,
                          rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))

def run_child(a, path, ck, eos, new):
    cmd = [sys.executable, __file__, '--child', path, '--ck', str(ck), '--eos', json.dumps(eos), '--threads', str(a.threads),
           '--prompts', str(a.prompts), '--batch', str(a.batch), '--new', str(new)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': str(a.threads)})
    if r.returncode: raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])

def workload(ck, a):
    "EOS ids that end the prompts at spread steps (see above), and the lengths they give."
    m, t = _model(ck, [])
    from reasoning_entropy.engine import DecodingConfig, generate
    free = {}
    for _, g in generate(m, t, make_prompts(a.prompts), DecodingConfig(max_new_tokens=a.new), batch_size=a.batch, top_k_alternatives=0, progress=False):
        free.update({r.prompt_id: list(map(int, r.generated_token_ids)) for r in g.itertuples()})
    rng = np.random.default_rng(0)
    eos = set()
    for pid in sorted(free):
        s = free[pid]; k = int(rng.integers(max(1, a.new // 10), a.new + 1))
        if s[k - 1] not in s[:k - 1] and s[k - 1] != 0: eos.add(s[k - 1])
    lengths = [next((j + 1 for j, v in enumerate(s) if v in eos), len(s)) for s in free.values()]
    return sorted(eos), lengths

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--child'); ap.add_argument('--ck'); ap.add_argument('--eos', default='[]')
    ap.add_argument('--threads', type=int, default=1); ap.add_argument('--prompts', type=int, default=64)
    ap.add_argument('--batch', type=int, default=16); ap.add_argument('--new', type=int, default=256)
    ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--fixed_new', default='256,64')
    ap.add_argument('--workdir'); ap.add_argument('--quick', action='store_true')
    a = ap.parse_args()
    if a.child: return child(a)
    if a.quick: a.prompts, a.new, a.repeats, a.fixed_new = 16, 64, 1, '16'
    fixed = [int(x) for x in str(a.fixed_new).split(',')]
    torch.set_num_threads(a.threads)
    work = Path(a.workdir or tempfile.mkdtemp(prefix='bench_batching_'))
    ck = build(work / 'ckpt', 0)
    t_all = time.perf_counter(); load0 = load_avg()
    eos, lengths = workload(ck, a)
    R = {}
    loads = [('varied lengths', eos, a.new)] + [(f'fixed length {n} (no EOS)', [], n) for n in fixed]
    for label, e, new in loads:
        for rep in range(a.repeats):
            for path in (('engine', 'plain') if rep % 2 == 0 else ('plain', 'engine')):
                before = busy_cpus(0.5)
                r = run_child(a, path, ck, e, new); r['others'] = before
                R.setdefault((label, path), []).append(r)
                print(label, path, rep, f"{r['seconds']:.2f} s, {r['tokens'] / r['seconds']:.0f} tokens/s, rss {r['rss']:.0f} MiB", flush=True)
    total = time.perf_counter() - t_all
    rows, ratios, same = [], {}, {}
    for label, _, _ in loads:
        e_, p_ = R[(label, 'engine')], R[(label, 'plain')]
        same[label] = all(x['ids'] == e_[0]['ids'] for x in e_ + p_)
        tps = lambda rs: float(np.median([x['tokens'] / x['seconds'] for x in rs]))
        cps = lambda rs: float(np.median([x['tokens'] / x['cpu'] for x in rs]))
        ratios[label] = (tps(e_) / tps(p_), cps(e_) / cps(p_), max(x['rss'] for x in e_), max(x['rss'] for x in p_))
        for path, rs in (('engine (metrics, continuous batching)', e_), ('plain `model.generate` (no metrics)', p_)):
            rows.append(f"| {label} | {path} | {rs[0]['tokens']:,} | {np.median([x['seconds'] for x in rs]):.2f} | {tps(rs):.0f} | "
                        f"{', '.join('%.0f' % (x['tokens'] / x['seconds']) for x in rs)} | {max(x['rss'] for x in rs):.0f} | {max(x['others'] for x in rs):.2f} |")
    q = np.percentile(lengths, [0, 10, 25, 50, 75, 90, 100])
    cpu = next((l.split(':', 1)[1].strip() for l in subprocess.run(['lscpu'], capture_output=True, text=True).stdout.splitlines()
                if l.startswith('Model name')), platform.processor())
    date = subprocess.run(['date'], capture_output=True, text=True).stdout.strip()
    ok = lambda b: 'PASS' if b else 'FAIL'
    v = ratios['varied lengths']; fx = [(n, ratios[f'fixed length {n} (no EOS)']) for n in fixed]
    lines = ['## Continuous batching (engine vs plain batched generate)', '',
             f'Machine: {cpu}, {os.cpu_count()} CPUs, no GPU; torch {torch.__version__} ({a.threads} thread per process). Date: {date}. '
             f'Load average at the start: {load0}. Total {total:.0f} s.',
             f'Workload: {a.prompts} prompts (16-64 tokens), batch size {a.batch}, max_new_tokens {a.new}; {len(eos)} EOS ids chosen as '
             f'described in the script; generation lengths (tokens, EOS included): min {q[0]:.0f}, p10 {q[1]:.0f}, p25 {q[2]:.0f}, '
             f'median {q[3]:.0f}, p75 {q[4]:.0f}, p90 {q[5]:.0f}, max {q[6]:.0f} ({sum(l == a.new for l in lengths)} of {len(lengths)} '
             f'reach the limit). Fixed-length controls: no EOS, {" and ".join(map(str, fixed))} new tokens.',
             f'Command: `python benchmarks/bench_batching.py --threads {a.threads}{" --quick" if a.quick else ""}`', '',
             '| workload | path | tokens | seconds (median) | tokens/s (median) | tokens/s per repeat | peak RSS (MiB) | others\' CPUs busy before |',
             '|---|---|---|---|---|---|---|---|', *rows, '',
             '| measure | value | target | |', '|---|---|---|---|',
             f'| useful tokens/s, engine / plain, varied lengths | {v[0]:.2f} (CPU-seconds: {v[1]:.2f}) | ≥ 1.5 | {ok(v[0] >= 1.5)} |',
             *[f'| tokens/s, engine / plain, fixed length {n} | {f[0]:.2f} (CPU-seconds: {f[1]:.2f}) | ≥ 1.0 | {ok(f[0] >= 1.0)} |' for n, f in fx],
             f'| peak RSS, engine vs plain (varied; {"; ".join(f"fixed {n}" for n, _ in fx)}) | {v[2]:.0f} vs {v[3]:.0f}; '
             f'{"; ".join(f"{f[2]:.0f} vs {f[3]:.0f}" for _, f in fx)} MiB | no higher | {ok(all(x[2] <= x[3] * 1.02 for x in [v] + [f for _, f in fx]))} |',
             f"| same tokens, every repeat and path | {'yes' if all(same.values()) else 'NO'} | yes | {ok(all(same.values()))} |", '',
             'The engine computes every metric of every token (full-vocabulary entropy, rank, varentropy, top-5) and plain '
             '`generate` none. Peak RSS is the whole process (Python, torch, the model), within 2% counted as no higher.']
    if a.quick: print('\n'.join(lines)); return
    publish('batching', lines)

if __name__ == '__main__': main()
