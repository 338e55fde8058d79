"""Sampling overhead: engine `generate` with metrics, sampled vs greedy, same batch size and same tokens, CPU.

Target (issue 12, item 5): sampled decoding with metrics costs at most 1.15× the time of greedy decoding with metrics at
the same batch size. Paths, each `reasoning_entropy.engine.generate(..., top_k_alternatives=5, progress=False)`:
- greedy: `DecodingConfig(do_sample=False)`;
- sampled: `DecodingConfig(do_sample=True, temperature=1.0, seed=7)` (each prompt's own random stream, inverse CDF in
  float64 over the warped softmax: `engine._stream`, `engine._sample`);
- sampled + top-p 0.95 (sorts the vocabulary of every row) and sampled + top-k 50, as extra rows.
Models: `bench_engine.build`'s random Qwen2 (hidden 512, 4 layers, 32k vocabulary) and the tiny random Gemma 3 with
Gemma-3's 262,144-token vocabulary (`make_tiny_checkpoint(path, 'gemma3', vocab_size=262144)`), where the vocabulary
work dominates.
Same tokens: the EOS ids are taken off the loaded model and tokenizer, so every row of every path generates exactly
`max_new_tokens` tokens (checked) and seconds per call compare as time per generated token.
Repeats interleave the paths (their order rotates each repeat); medians reported. A micro-profile of one decoding step's
vocabulary work (`token_metrics` vs `_sample`'s parts) on random logits shows where the extra time goes.
Writes its section `sampling` of benchmarks/RESULTS.md.
  python benchmarks/bench_sampling.py [--threads N] [--repeats 5] [--batches 1 8 32] [--workdir DIR] [--quick]
"""
from __future__ import annotations
import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_engine import HIDDEN, LAYERS, V, build, make_prompts, _warm, busy_cpus, load_avg, publish

GEMMA_V, SEED, K_ALT, MIN_PROMPTS = 262_144, 7, 5, 4
PATHS = {'greedy': dict(do_sample=False),
         'sampled': dict(do_sample=True, temperature=1.0, seed=SEED),
         'sampled, top-p 0.95': dict(do_sample=True, temperature=1.0, seed=SEED, top_p=0.95),
         'sampled, top-k 50': dict(do_sample=True, temperature=1.0, seed=SEED, top_k=50)}

def no_eos(m, t):
    "Take the EOS ids off a loaded model and tokenizer: every row then runs to `max_new_tokens` (the pad id stays)."
    m.generation_config.eos_token_id = None; m.config.eos_token_id = None; t.eos_token = None

def machine_busy() -> float:
    "Seconds of CPU time the whole machine has spent busy since boot (/proc/stat: all but idle and iowait)."
    v = [int(x) for x in open('/proc/stat').readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf('SC_CLK_TCK')

def call(m, t, prompts, path, new, bs):
    "One timed engine call: dict(wall, cpu seconds of this process, CPUs other processes kept busy meanwhile), tokens, ids."
    from reasoning_entropy.engine import DecodingConfig, generate
    d = DecodingConfig(max_new_tokens=new, **PATHS[path])
    b0, c0, t0 = machine_busy(), time.process_time(), time.perf_counter()
    out = list(generate(m, t, prompts, d, batch_size=bs, top_k_alternatives=K_ALT, progress=False))
    dt, cpu, b1 = time.perf_counter() - t0, time.process_time() - c0, machine_busy()
    gens = [g for _, gd in out for g in gd.itertuples()]
    assert all(g.n_tokens == new for g in gens), f'{path}: a row stopped before {new} tokens'
    return dict(wall=dt, cpu=cpu, others=max(0.0, (b1 - b0 - cpu) / dt)), sum(len(x) for x, _ in out), \
        {g.prompt_id: list(g.generated_token_ids) for g in gens}

def run_model(ck, batches, new, reps, paths):
    "Every (batch, path) on one checkpoint, repeats interleaved; {(batch, path): dict(times, cpu, others, tokens, same, ids)}."
    from reasoning_entropy.checkpoints import loaded
    R = {}
    with loaded(ck, device='cpu') as (m, t):
        no_eos(m, t); _warm(m)
        for bs in batches:
            prompts = make_prompts(max(bs, MIN_PROMPTS))
            for p in paths: call(m, t, prompts[:bs], p, 2, bs)  # warm-up of each path at this batch size
            for r in range(reps):
                for p in paths[r % len(paths):] + paths[:r % len(paths)]:
                    c, n, ids = call(m, t, prompts, p, new, bs)
                    e = R.setdefault((bs, p), dict(times=[], cpu=[], others=[], tokens=n, ids=ids, same=True))
                    e['times'].append(c['wall']); e['cpu'].append(c['cpu']); e['others'].append(c['others'])
                    e['same'] &= ids == e['ids']
                    print(f"{ck.name} batch {bs} repeat {r} {p}: {c['wall']:.2f} s (cpu {c['cpu']:.2f} s, others "
                          f"{c['others']:.2f} CPUs), {n / c['wall']:.0f} tokens/s", flush=True)
    return R

def _med_time(f, n):
    "Median seconds of f() over n calls (after one warm-up)."
    f(); ts = []
    for _ in range(n):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts))

def profile_step(vocab, rows, n):
    """Milliseconds per decoding step of the vocabulary work on random [rows, vocab] logits: greedy's metrics, sampling's
    at T = 1 (the draw inside `token_metrics`), its parts (`_draw`, `_rank`), and the warped path (`_sample`, then the
    metrics at the drawn ids) with its top-p / top-k warpers, each in the metrics' own row chunks."""
    from reasoning_entropy.engine import DecodingConfig, _sample
    from reasoning_entropy.metrics import _chunk_rows, _draw, _moments, _rank, _warp, sample_tokens, token_metrics
    g = torch.Generator().manual_seed(0)
    z = torch.randn(rows, vocab, generator=g) * 3
    zp = torch.randn(rows, vocab, generator=g) * 12  # peaked: the nucleus is a few tokens, as in a trained checkpoint
    u = torch.rand(rows, dtype=torch.float64, generator=g)
    d = DecodingConfig(do_sample=True, temperature=1.0, seed=SEED)
    c = _chunk_rows(vocab, None)
    zs = [z[s:s+c] for s in range(0, rows, c)]; zps = [zp[s:s+c] for s in range(0, rows, c)]; us = [u[s:s+c] for s in range(0, rows, c)]
    es = [_moments(x, x.amax(-1, keepdim=True))[3] for x in zs]
    chosen = token_metrics(z, None, K_ALT, u=u)['chosen']
    cs = [z.gather(1, chosen[:, None])[s:s+c] for s in range(0, rows, c)]
    each = lambda f, xs: (lambda: [f(*x) for x in xs])
    parts = {'greedy: `token_metrics(logits, None)`': lambda: token_metrics(z, None, K_ALT),
             'sampled T = 1: `token_metrics(logits, None, u=u)`': lambda: token_metrics(z, None, K_ALT, u=u),
             'of which `_draw`': each(_draw, list(zip(es, us))),
             'of which `_rank`': each(_rank, list(zip(zs, cs))),
             'warped: `_sample` (T = 1 given as a warper)': lambda: _sample(z, d, u),
             'warped: `token_metrics(logits, chosen)`': lambda: token_metrics(z, chosen, K_ALT),
             'top-p 0.95: `sample_tokens`': lambda: sample_tokens(z, u, top_p=0.95),
             'top-p 0.95: whole-vocabulary `_warp` (sort …)': each(lambda x: _warp(x, top_p=0.95), [(x,) for x in zs]),
             'top-p 0.95 on peaked logits N(0, 12²): `sample_tokens`': lambda: sample_tokens(zp, u, top_p=0.95),
             'top-p 0.95 on peaked logits: whole-vocabulary `_warp`': each(lambda x: _warp(x, top_p=0.95), [(x,) for x in zps]),
             'top-k 50: `sample_tokens`': lambda: sample_tokens(z, u, top_k=50),
             'T 0.6, top-k 20, top-p 0.95: `sample_tokens`': lambda: sample_tokens(z, u, 0.6, 20, 0.95)}
    with torch.inference_mode():
        return {k: 1e3 * _med_time(f, n) for k, f in parts.items()}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    ap.add_argument('--repeats', type=int, default=5, help='interleaved calls per (model, batch, path); medians reported')
    ap.add_argument('--batches', type=int, nargs='+', default=[1, 8, 32])
    ap.add_argument('--new_tokens', type=int, default=64, help='max_new_tokens, 32k-vocabulary model')
    ap.add_argument('--gemma_new_tokens', type=int, default=16, help='max_new_tokens, 262,144-vocabulary Gemma 3')
    ap.add_argument('--workdir', default=None)
    ap.add_argument('--quick', action='store_true', help='batches 1 8, 16 tokens, 1 repeat (a smoke test; publishes nothing)')
    a = ap.parse_args()
    if a.quick: a.batches, a.new_tokens, a.gemma_new_tokens, a.repeats = [1, 8], 16, 16, 1
    if a.threads: torch.set_num_threads(a.threads)
    from reasoning_entropy.checkpoints import resolve_checkpoints
    from reasoning_entropy.testing import make_tiny_checkpoint
    work = Path(a.workdir or tempfile.mkdtemp(prefix='bench_sampling_'))
    t_all = time.perf_counter()
    g = work/f'gemma3-{GEMMA_V}'
    if not (g/'config.json').exists(): make_tiny_checkpoint(g, 'gemma3', vocab_size=GEMMA_V)
    mid, gem = resolve_checkpoints([build(work/'ckpt-0', 0), g])
    paths = list(PATHS)
    others, loads, res = [], [], {}
    for ck, vocab, new in ((mid, V, a.new_tokens), (gem, GEMMA_V, a.gemma_new_tokens)):
        loads.append(load_avg()); others.append(busy_cpus())
        res[vocab] = (new, run_model(ck, a.batches, new, a.repeats, paths))
    prof_rows = 8
    prof = {v: profile_step(v, prof_rows, 5 if a.quick else 20) for v in (V, GEMMA_V)}
    others.append(busy_cpus())
    total = time.perf_counter() - t_all

    rows, worst, ratios, cpu_ratios = [], (0.0, None), {}, {}
    for vocab, (new, R) in res.items():
        for bs in a.batches:
            gr = R[(bs, 'greedy')]
            for p in paths:
                e = R[(bs, p)]; med = float(np.median(e['times']))
                ratio = med / np.median(gr['times'])  # same tokens per call (checked), so also the ratio per generated token
                cpu_ratio = np.median(e['cpu']) / np.median(gr['cpu'])
                per_rep = [x / y for x, y in zip(e['times'], gr['times'])]
                if p != 'greedy':
                    ratios[(vocab, bs, p)], cpu_ratios[(vocab, bs, p)] = ratio, cpu_ratio
                    if ratio > worst[0]: worst = (ratio, (vocab, bs, p))
                dash = lambda x: '—' if p == 'greedy' else f'{x:.3f}'
                rows.append(f"| {p} | {vocab:,} | {bs} | {e['tokens']} | {med:.2f} | {e['tokens'] / med:.0f} | {dash(ratio)} | "
                            f"{', '.join(f'{x:.2f}' for x in per_rep)} | {dash(cpu_ratio)} | {max(e['others']):.2f} |")
    busy = [x for _, R in res.values() for e in R.values() for x in e['others']]
    same = all(e['same'] for _, R in res.values() for e in R.values())
    differ = all(R[(bs, 'sampled')]['ids'] != R[(bs, 'greedy')]['ids'] for _, R in res.values() for bs in a.batches)
    base, cbase = ({v: {k: x for k, x in r.items() if k[0] == v and k[2] == 'sampled'} for v in (V, GEMMA_V)}
                   for r in (ratios, cpu_ratios))
    print({k: round(float(x), 3) for k, x in ratios.items()}, f'total {total:.0f} s')

    cpu = next((l.split(':', 1)[1].strip() for l in subprocess.run(['lscpu'], capture_output=True, text=True).stdout.splitlines()
                if l.startswith('Model name')), platform.processor())
    mem = subprocess.run(['free', '-m'], capture_output=True, text=True).stdout.splitlines()[1].split()[1]
    date = subprocess.run(['date'], capture_output=True, text=True).stdout.strip()
    flags = ' '.join(f'--{k} {v}' for k, v in (('threads', a.threads), ('repeats', a.repeats)) if v)
    ok = lambda b: 'PASS' if b else 'FAIL'
    fmt = lambda d: ', '.join(f'batch {k[1]} {x:.3f}' for k, x in d.items())
    pv = lambda v: ' | '.join(f'{x:.2f}' for x in prof[v].values())
    G, S, DR, RK, WS, WM, TOPP = (next(k for k in prof[V] if k.startswith(key)) for key in (
        'greedy', 'sampled T = 1', 'of which `_draw`', 'of which `_rank`', 'warped: `_sample`', 'warped: `token_metrics', 'top-p 0.95: whole'))
    TK = next(k for k in prof[V] if k.startswith('top-k 50'))
    PK, PW = (next(k for k in prof[V] if k.startswith(key)) for key in ('top-p 0.95 on peaked logits N', 'top-p 0.95 on peaked logits:'))
    per = lambda v, k: f'{prof[v][k] / prof_rows:.2f}'
    extra = lambda v: (prof[v][S] - prof[v][G]) / prof_rows
    big = max(a.batches)
    gap = lambda v: 1e3 * (np.median(res[v][1][(big, 'sampled')]['times']) - np.median(res[v][1][(big, 'greedy')]['times'])) \
        / res[v][1][(big, 'greedy')]['tokens']
    fmt_all = lambda key: '; '.join(f'{v:,}: ' + ', '.join(f'{x:.2f}' for k, x in ratios.items() if k[0] == v and key in k[2])
                                    for v in (V, GEMMA_V))
    step = lambda v: 1e3 * np.median(res[v][1][(big, 'greedy')]['times']) / res[v][1][(big, 'greedy')]['tokens']
    lines = [
        '## Sampling overhead (sampled vs greedy, with metrics)', '',
        f'Machine: {cpu}, {os.cpu_count()} CPUs (nproc), {mem} MiB RAM (free -m), no GPU; torch {torch.__version__} '
        f'({torch.get_num_threads()} threads). Date: {date}. Total benchmark time {total:.0f} s.',
        f'CPUs kept busy by other processes during the measured calls (from /proc/stat less this process\'s CPU time): median '
        f'{np.median(busy):.2f}, max {max(busy):.2f}, {sum(x > 0.25 for x in busy)} of {len(busy)} calls above 0.25; in the second '
        f'before each model and after the profile: {", ".join(f"{x:.2f}" for x in others)}; load average (1/5/15 min) before '
        f'each model: {"; ".join(loads)}.',
        *([f'**Shared machine**: other processes kept up to {max(busy):.2f} CPUs busy during some calls; the CPU-seconds '
           'ratio (this process\'s own CPU time, 1 thread) is the steadier figure then.'] if max(busy) > 0.25 else []),
        f'Models: `bench_engine.build`\'s random Qwen2 (hidden {HIDDEN}, {LAYERS} layers, vocabulary {V:,}), {res[V][0]} new tokens; '
        f"tiny random Gemma 3 (`make_tiny_checkpoint(path, 'gemma3', vocab_size={GEMMA_V})`, hidden 32, 2 layers), "
        f'{res[GEMMA_V][0]} new tokens; float32. Prompts: `bench_engine.make_prompts` (16-64 tokens), max(batch, {MIN_PROMPTS}) '
        f'per call, `batch_size` = batch, `top_k_alternatives={K_ALT}`. Sampled: `DecodingConfig(do_sample=True, temperature=1.0, '
        f'seed={SEED})` (+ `top_p=0.95` / `top_k=50` rows); greedy: `DecodingConfig(do_sample=False)`.',
        f'Command: `python benchmarks/bench_sampling.py{" " + flags if flags else ""}`', '',
        '| path | vocabulary | batch | tokens | seconds (median) | tokens/s | ratio sampled/greedy per token | per repeat | '
        'ratio, CPU seconds | others\' CPUs busy (max) |',
        '|---|---|---|---|---|---|---|---|---|---|', *rows, '',
        '| measure | value | target | |', '|---|---|---|---|',
        f"| sampled (T = 1) / greedy, vocabulary {V:,} | {fmt(base[V])} | ≤ 1.15 | {ok(max(base[V].values()) <= 1.15)} |",
        f"| sampled (T = 1) / greedy, vocabulary {GEMMA_V:,} | {fmt(base[GEMMA_V])} | ≤ 1.15 | {ok(max(base[GEMMA_V].values()) <= 1.15)} |",
        *(f"| same, CPU seconds, vocabulary {v:,} | {fmt(cbase[v])} | ≤ 1.15 | {ok(max(cbase[v].values()) <= 1.15)} |"
          for v in (V, GEMMA_V)),
        f"| worst ratio, any sampled row | {worst[0]:.3f} ({worst[1][2]}, vocabulary {worst[1][0]:,}, batch {worst[1][1]}) | ≤ 1.15 | "
        f"{ok(worst[0] <= 1.15)} |",
        f"| same tokens in every repeat of a path; sampled ≠ greedy | {'yes' if same else 'NO'}; {'yes' if differ else 'NO'} | yes | "
        f"{ok(same and differ)} |", '',
        f'Vocabulary work of one decoding step, profiled on random logits (N(0, 3²), [{prof_rows}, vocabulary] float32, in `_sample`\'s '
        f'row chunks), milliseconds for the {prof_rows} rows, median of 20 (no model forward):', '',
        '| vocabulary | ' + ' | '.join(prof[V]) + ' |', '|---|' + '---|' * len(prof[V]),
        f'| {V:,} | {pv(V)} |', f'| {GEMMA_V:,} | {pv(GEMMA_V)} |', '',
        '### Notes', '',
        '- Same tokens: the EOS ids are taken off the loaded model and tokenizer (`generation_config`, `config`, tokenizer), so '
        'every row of every path generates exactly `max_new_tokens` tokens (asserted per call); the tokens column is equal '
        'across paths, so the seconds ratio is the ratio of time per generated token. Each call is the whole `generate` '
        '(batches, metrics, token and generation frames); paths rotate order every repeat; one warm-up call per path and batch.',
        f'- Vocabulary {V:,}: sampled (T = 1) / greedy {fmt(base[V])}: '
        f"{'within' if max(base[V].values()) <= 1.15 else '**over**'} 1.15. The model's forward (hidden {HIDDEN}, {LAYERS} "
        f'layers, a {HIDDEN}×{V:,} projection) is most of a step: a greedy token takes {step(V):.2f} ms at batch {big}, of which '
        f'{per(V, G)} ms is greedy\'s vocabulary work (profile); sampling adds {extra(V):.2f} ms per row (profile), measured '
        f'{gap(V):+.2f} ms per token at batch {big}.',
        f'- Vocabulary {GEMMA_V:,}: sampled (T = 1) / greedy {fmt(base[GEMMA_V])}: '
        f"{'within' if max(base[GEMMA_V].values()) <= 1.15 else '**over the 1.15 target**'} (CPU seconds: {fmt(cbase[GEMMA_V])}). "
        f'The body (hidden 32, 2 layers) is tiny, so a step is mostly vocabulary work: a greedy token takes {step(GEMMA_V):.2f} ms '
        f'at batch {big} (the 32×{GEMMA_V:,} projection, the final softcapping, `token_metrics` {per(GEMMA_V, G)} ms: one top-k, '
        f'one pass of softmax moments); sampling measured {gap(GEMMA_V):+.2f} ms per token, profile {extra(GEMMA_V):+.2f} ms per '
        f'row. At T = 1 without top-k/top-p the draw happens inside `token_metrics` on the exponentials its entropy needs '
        f'(`metrics._draw`: float32 sums of 256-entry blocks, a float64 running sum over the blocks, then over the chosen block '
        f'only: {per(GEMMA_V, DR)} ms per row), and the sampled token\'s rank is one more comparison pass (`metrics._rank`, '
        f'{per(GEMMA_V, RK)} ms per row); the sampling entropy is the metrics\' entropy. A warped distribution (any temperature '
        f'≠ 1, top-k, top-p) still needs its own exponentials: `_sample` {per(GEMMA_V, WS)} ms, then `token_metrics` at the '
        f'drawn ids {per(GEMMA_V, WM)} ms per row.',
        f"- Top-k and top-p go through `metrics.sample_tokens`, which warps and draws among the most likely tokens only "
        f"(`top_k` of them, or the 256 best when their mass reaches `top_p`; {per(GEMMA_V, TK)} ms per row for top-k 50 at "
        f"{GEMMA_V:,}) and falls back to sorting the whole vocabulary ({per(V, TOPP)} ms per row at {V:,}, {per(GEMMA_V, TOPP)} ms "
        f"at {GEMMA_V:,}) only for rows whose nucleus is wider. These random checkpoints are nearly uniform (entropy near "
        f"log V), so every top-p row here takes the fallback: top-p rows are {fmt_all('top-p')} times greedy, top-k 50 rows "
        f"{fmt_all('top-k')}. A trained checkpoint's nucleus is usually a handful of tokens: on peaked logits (N(0, 12²)) "
        f"top-p 0.95 takes {per(GEMMA_V, PK)} ms per row at {GEMMA_V:,} against {per(GEMMA_V, PW)} ms for the whole-vocabulary "
        "sort (profile).",
    ]
    (work/'sampling_results.json').write_text(json.dumps(dict(profile_ms=prof, runs={
        f'{v}/{bs}/{p}': {k: e[k] for k in ('times', 'cpu', 'others', 'tokens')} for v, (_, R) in res.items() for (bs, p), e in R.items()}), indent=1))
    if a.quick: print('\n'.join(lines))  # a smoke test: RESULTS.md untouched
    else: publish('sampling', lines)

if __name__ == '__main__':
    main()
