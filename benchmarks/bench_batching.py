"""Continuous batching: the engine (rows leave at EOS, waiting prompts take their slots) against plain batched
`model.generate`, on a workload whose generation lengths spread from 10% to 100% of `max_new_tokens`, CPU.

Model: `bench_engine.build`'s random Qwen2 (hidden 512, 4 layers, 32k vocabulary); prompts `bench_engine.make_prompts`
(16-64 tokens). A random model never emits its EOS, so the workload gives it EOS ids that end each prompt at a chosen
step: every prompt is first decoded without EOS (greedy, 256 tokens); each gets a target length drawn uniformly from
26-256; the token it generates at that step becomes an EOS id (unless it already occurs earlier in that prompt). Both
paths then decode with the same EOS ids, so each prompt stops at the first of them it meets (lengths reported).
Paths, each in its own process (peak RSS from ru_maxrss), the same batch size:
- engine: `reasoning_entropy.engine.generate` (metrics at every step, `top_k_alternatives=5`), continuous batching;
- static: the same, batch at a time (`_generate_batch`: the engine before continuous batching);
- plain: `model.generate(..., do_sample=False, eos_token_id=EOS)` without metrics, length-sorted batches.
Memory, besides each timed process's peak RSS: the generation's own peak above the RSS just before it (Linux
`clear_refs`), in one more process per path with glibc's mmap threshold pinned (RSS then follows the live
memory), for a first and a second call. The target (continuous lowest) is on the second call: the first also pays
one-time costs of a process's first generation (on the engine paths, pandas' first token table: 5.9 MiB measured).
Same tokens are checked (each plain row cut after its first EOS id). Useful tokens/s = generated tokens (up to and
including EOS) / seconds. Fixed-length controls (no EOS, every row runs to the limit: the same 256 new tokens, and
the 64 of `bench_engine`) check that nothing regressed where there is nothing to compact.
Writes its section `batching` of benchmarks/RESULTS.md.
  python benchmarks/bench_batching.py [--threads 1] [--prompts 64] [--batch 16] [--new 256] [--fixed_new 256,64] [--repeats 3] [--quick]   (about 26 minutes)
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

def _status_kib(key):
    "A field of /proc/self/status in KiB."
    return next(int(l.split()[1]) for l in Path('/proc/self/status').read_text().splitlines() if l.startswith(key + ':'))

def _reset_peak():
    "Reset this process's peak RSS to its current RSS (Linux `clear_refs` 5); the RSS in MiB, or None where it cannot."
    try: Path('/proc/self/clear_refs').write_text('5'); return _status_kib('VmRSS') / 1024
    except OSError: return None

def _decode(a, m, t, prompts, eos)->dict:
    "Run this child's path once: {prompt id: generated ids}."
    import reasoning_entropy.engine as E
    ids = {}
    if a.child in ('engine', 'static'):
        if a.child == 'static': E._plain_cache = lambda model: False  # the batch-at-a-time path, as before continuous batching
        for _, g in E.generate(m, t, prompts, E.DecodingConfig(max_new_tokens=a.new), batch_size=a.batch, top_k_alternatives=5, progress=False):
            ids.update({r.prompt_id: list(map(int, r.generated_token_ids)) for r in g.itertuples()})
        return ids
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
    return ids

def child(a):
    "Run one path `a.runs` times in this process: prints JSON (per run: seconds, cpu, peak growth MiB; tokens, ids, peak RSS MiB)."
    torch.set_num_threads(a.threads)
    eos = json.loads(a.eos)
    m, t = _model(Path(a.ck), eos)
    prompts = make_prompts(a.prompts)
    runs = []
    for _ in range(a.runs):
        rss0 = _reset_peak()
        c0, t0 = time.process_time(), time.perf_counter()
        ids = _decode(a, m, t, prompts, eos)
        runs.append(dict(seconds=time.perf_counter() - t0, cpu=time.process_time() - c0,
                         grow=None if rss0 is None else _status_kib('VmHWM') / 1024 - rss0))
    print(json.dumps(dict(runs=runs, seconds=runs[0]['seconds'], cpu=runs[0]['cpu'], tokens=sum(map(len, ids.values())), ids=ids,
                          rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))

_PINNED = {'MALLOC_MMAP_THRESHOLD_': str(16 << 10)}  # glibc: every block of 16 KiB or more is its own mapping, unmapped when freed

def run_child(a, path, ck, eos, new, runs=1, pinned=False):
    "Run `path` in a fresh process; `pinned`: with glibc's mmap threshold fixed, so that RSS follows the live memory."
    cmd = [sys.executable, __file__, '--child', path, '--ck', str(ck), '--eos', json.dumps(eos), '--threads', str(a.threads),
           '--prompts', str(a.prompts), '--batch', str(a.batch), '--new', str(new), '--runs', str(runs)]
    env = {**os.environ, 'OMP_NUM_THREADS': str(a.threads), **(_PINNED if pinned else {})}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
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

PATHS = {'engine': 'engine, continuous batching', 'static': 'engine, batch at a time', 'plain': 'plain `model.generate` (no metrics)'}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--child'); ap.add_argument('--ck'); ap.add_argument('--eos', default='[]')
    ap.add_argument('--threads', type=int, default=1); ap.add_argument('--prompts', type=int, default=64)
    ap.add_argument('--batch', type=int, default=16); ap.add_argument('--new', type=int, default=256)
    ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--fixed_new', default='256,64')
    ap.add_argument('--runs', type=int, default=1); ap.add_argument('--workdir'); ap.add_argument('--quick', action='store_true')
    a = ap.parse_args()
    if a.child: return child(a)
    if a.quick: a.prompts, a.new, a.repeats, a.fixed_new = 16, 64, 1, '16'
    fixed = [int(x) for x in str(a.fixed_new).split(',')]
    torch.set_num_threads(a.threads)
    work = Path(a.workdir or tempfile.mkdtemp(prefix='bench_batching_'))
    ck = build(work / 'ckpt', 0)
    t_all = time.perf_counter(); load0 = load_avg()
    eos, lengths = workload(ck, a)
    R, M = {}, {}
    loads = [('varied lengths', eos, a.new)] + [(f'fixed length {n} (no EOS)', [], n) for n in fixed]
    for label, e, new in loads:
        for rep in range(a.repeats):
            for path in (list(PATHS) if rep % 2 == 0 else list(PATHS)[::-1]):
                before = busy_cpus(0.5)
                r = run_child(a, path, ck, e, new); r['others'] = before
                R.setdefault((label, path), []).append(r)
                print(label, path, rep, f"{r['seconds']:.2f} s, {r['tokens'] / r['seconds']:.0f} tokens/s, rss {r['rss']:.0f} MiB", flush=True)
        for path in PATHS:  # memory: glibc's threshold pinned, two calls in one process (the second without first-use costs)
            M[(label, path)] = r = run_child(a, path, ck, e, new, runs=2, pinned=True)
            print(label, path, 'memory', ', '.join(f"{x['grow']:.1f}" for x in r['runs']), 'MiB', flush=True)
    total = time.perf_counter() - t_all
    rows, mrows, same = [], [], {}
    tps = lambda rs: float(np.median([x['tokens'] / x['seconds'] for x in rs]))
    cps = lambda rs: float(np.median([x['tokens'] / x['cpu'] for x in rs]))
    ratio = lambda label, p, q: (tps(R[(label, p)]) / tps(R[(label, q)]), cps(R[(label, p)]) / cps(R[(label, q)]))
    grow = lambda label, p, i: M[(label, p)]['runs'][i]['grow']
    for label, _, _ in loads:
        every = [x for p in PATHS for x in R[(label, p)] + [M[(label, p)]]]
        same[label] = all(x['ids'] == every[0]['ids'] for x in every)
        for path, name in PATHS.items():
            rs = R[(label, path)]
            rows.append(f"| {label} | {name} | {rs[0]['tokens']:,} | {np.median([x['seconds'] for x in rs]):.2f} | {tps(rs):.0f} | "
                        f"{', '.join('%.0f' % (x['tokens'] / x['seconds']) for x in rs)} | {max(x['others'] for x in rs):.2f} |")
            mrows.append(f"| {label} | {name} | {max(x['rss'] for x in rs):.0f} | {grow(label, path, 0):.1f} | {grow(label, path, 1):.1f} |")
    q = np.percentile(lengths, [0, 10, 25, 50, 75, 90, 100])
    cpu = next((l.split(':', 1)[1].strip() for l in subprocess.run(['lscpu'], capture_output=True, text=True).stdout.splitlines()
                if l.startswith('Model name')), platform.processor())
    date = subprocess.run(['date'], capture_output=True, text=True).stdout.strip()
    ok = lambda b: 'PASS' if b else 'FAIL'
    V = 'varied lengths'; fx = [f'fixed length {n} (no EOS)' for n in fixed]
    r_ = lambda x: f'{x[0]:.3f} (CPU-seconds: {x[1]:.3f})'
    mem = lambda label, i: ' / '.join(f'{grow(label, p, i):.1f}' for p in PATHS)
    lower = lambda label, i: all(grow(label, 'engine', i) <= grow(label, p, i) for p in ('static', 'plain'))
    lines = ['## Continuous batching (engine vs plain batched generate)', '',
             f'Machine: {cpu}, {os.cpu_count()} CPUs, no GPU; torch {torch.__version__} ({a.threads} thread per process). Date: {date}. '
             f'Load average at the start: {load0}. Total {total:.0f} s.',
             f'Workload: {a.prompts} prompts (16-64 tokens), batch size {a.batch}, max_new_tokens {a.new}; {len(eos)} EOS ids chosen as '
             f'described in the script; generation lengths (tokens, EOS included): min {q[0]:.0f}, p10 {q[1]:.0f}, p25 {q[2]:.0f}, '
             f'median {q[3]:.0f}, p75 {q[4]:.0f}, p90 {q[5]:.0f}, max {q[6]:.0f} ({sum(l == a.new for l in lengths)} of {len(lengths)} '
             f'reach the limit). Fixed-length controls: no EOS, {" and ".join(map(str, fixed))} new tokens.',
             f'Command: `python benchmarks/bench_batching.py --threads {a.threads}{" --quick" if a.quick else ""}`', '',
             'Paths: the engine with continuous batching; the same engine batch at a time (its path before continuous batching, '
             'still used for sliding-window caches); plain `model.generate`. Both engine paths compute every metric of every token '
             '(full-vocabulary entropy, rank, varentropy, top-5), plain `generate` none.', '',
             '| workload | path | tokens | seconds (median) | tokens/s (median) | tokens/s per repeat | others\' CPUs busy before |',
             '|---|---|---|---|---|---|---|', *rows, '',
             'Memory. Peak RSS: the whole timed process (Python, torch, the model), max over repeats, glibc as it comes. '
             'Generation peak: how far the resident memory rose above its level just before `generate` (peak reset with '
             '`/proc/self/clear_refs`), in a separate process with glibc\'s mmap threshold pinned at 16 KiB, so that freed '
             'blocks go back to the system and the resident memory follows the live memory; first call (with first-use '
             'costs such as lazy initialisations) and second call in the same process.', '',
             '| workload | path | peak RSS (MiB) | generation peak, first call (MiB) | second call (MiB) |', '|---|---|---|---|---|', *mrows, '',
             '| measure | value | target | |', '|---|---|---|---|',
             f'| useful tokens/s, continuous / plain, varied lengths | {r_(ratio(V, "engine", "plain"))} | ≥ 1.5 | {ok(ratio(V, "engine", "plain")[0] >= 1.5)} |',
             f'| useful tokens/s, continuous / batch at a time, varied lengths | {r_(ratio(V, "engine", "static"))} | | |',
             *[f'| tokens/s, continuous / plain, {l} | {r_(ratio(l, "engine", "plain"))} | ≥ 1.0 | {ok(ratio(l, "engine", "plain")[0] >= 1.0)} |' for l in fx],
             *[f'| tokens/s, continuous / batch at a time, {l} | {r_(ratio(l, "engine", "static"))} | ≥ 1.0 | {ok(ratio(l, "engine", "static")[0] >= 1.0)} |' for l in fx],
             *[f'| generation peak (MiB), second call, continuous / batch at a time / plain, {l} | {mem(l, 1)} | continuous lowest | {ok(lower(l, 1))} |'
               for l, _, _ in loads],
             *[f'| generation peak (MiB), first call (with first-use costs), continuous / batch at a time / plain, {l} | {mem(l, 0)} | | |'
               for l, _, _ in loads],
             f"| same tokens, every repeat and path | {'yes' if all(same.values()) else 'NO'} | yes | {ok(all(same.values()))} |"]
    if a.quick: print('\n'.join(lines)); return
    publish('batching', lines)

if __name__ == '__main__': main()
