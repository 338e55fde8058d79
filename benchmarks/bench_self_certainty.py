"""Self-certainty's cost (issue 29): engine time per token with the `self_certainty` metric vs without it.

The same work is timed on two checkouts of the package: the tree before the change (a `git worktree` of the commit
before it, `--base`) and this one. Both packages are imported into one process (the base one under another module
name; their modules import each other relatively), and run on the same loaded model, `bench_engine.build`'s
mid-sized random Qwen2 (hidden 512, 4 layers, vocabulary 32,000), float32, CPU, one thread, alternating call by
call (the order swapped every repeat), so that a busy machine slows both alike:

- generation: `engine.generate`, greedy, `--prompts` prompts of `bench_engine.make_prompts`, `--new` new tokens,
  batch `--batch` (both trees generate the same tokens, checked);
- scoring: `engine.score`, teacher-forcing those generations;
- the vocabulary work alone: `metrics.token_metrics` on random logits [16, 32,000].

Each is timed in wall clock and in this process's CPU time; the ratios are medians of the paired repeats.
Writes its section `self_certainty` of benchmarks/RESULTS.md.
  python benchmarks/bench_self_certainty.py --base /tmp/re-base [--repeats 8] [--quick]
"""
from __future__ import annotations
import argparse, datetime, importlib, importlib.util, os, platform, statistics, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAIN = HERE.parent


def load_tree(tree: Path, alias: str):
    "The `reasoning_entropy` package of checkout `tree`, imported under the name `alias` (its modules import each other relatively)."
    init = tree/'reasoning_entropy'/'__init__.py'
    spec = importlib.util.spec_from_file_location(alias, init, submodule_search_locations=[str(init.parent)])
    mod = importlib.util.module_from_spec(spec); sys.modules[alias] = mod; spec.loader.exec_module(mod)
    return importlib.import_module(f'{alias}.engine'), importlib.import_module(f'{alias}.metrics')


def cpu_busy():
    "(busy jiffies, all jiffies) of the whole machine from /proc/stat."
    v = [int(x) for x in open('/proc/stat').readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6], sum(v)


def timed(f):
    "(result, wall seconds, this process's CPU seconds, CPUs the whole machine kept busy meanwhile) of calling `f`."
    b0, a0 = cpu_busy(); w0, c0 = time.perf_counter(), time.process_time()
    r = f()
    w1, c1 = time.perf_counter(), time.process_time(); b1, a1 = cpu_busy()
    return r, w1 - w0, c1 - c0, (b1 - b0) / max(1, a1 - a0) * (os.cpu_count() or 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--base', default='/tmp/re-base')
    ap.add_argument('--repeats', type=int, default=8)
    ap.add_argument('--prompts', type=int, default=16); ap.add_argument('--new', type=int, default=24); ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--quick', action='store_true', help='two small repeats, RESULTS.md untouched')
    a = ap.parse_args()
    if a.quick: a.repeats, a.prompts, a.new = 2, 4, 8
    import numpy as np, pandas as pd, torch
    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from bench_engine import build, make_prompts, _warm
    trees = {'without': Path(a.base).resolve(), 'with': MAIN}
    pk = {k: load_tree(t, f're_{k}') for k, t in trees.items()}
    for k, t in trees.items(): assert Path(pk[k][0].__file__).is_relative_to(t), (k, pk[k][0].__file__)
    ck = build(Path(tempfile.gettempdir())/'re-bench-sc-ckpt', 0)
    from reasoning_entropy.checkpoints import loaded, resolve_checkpoints
    ps = {k: [e.PromptInput(p.prompt_id, p.prompt_text, p.token_ids) for p in make_prompts(a.prompts)] for k, (e, _) in pk.items()}
    z = torch.randn(16, 32000, generator=torch.Generator().manual_seed(0)) * 3
    t_start, load0 = time.time(), os.getloadavg()
    res = {k: [] for k in trees}; toks = {}
    with loaded(resolve_checkpoints([ck])[0], device='cpu') as (m, t):
        _warm(m)
        def gen(k):
            e = pk[k][0]
            return pd.concat([x for x, _ in e.generate(m, t, ps[k], e.DecodingConfig(max_new_tokens=a.new), batch_size=a.batch, progress=False)])
        for k in trees: toks[k] = gen(k)  # warm-up, and the tokens each generates
        tw = toks['with']
        items = [(p.prompt_id, p.token_ids, tw.token_id[tw.prompt_id == p.prompt_id].tolist()) for p in ps['with']]
        for i in range(a.repeats):
            for k in (list(trees) if i % 2 == 0 else list(trees)[::-1]):  # alternate which goes first
                e, mt = pk[k]
                g, gw, gc, gb = timed(lambda: gen(k))
                s_, sw, sc, sb = timed(lambda: pd.concat(e.score(m, t, items, batch_size=a.batch, progress=False)))
                _, mw, mc, mb = timed(lambda: [mt.token_metrics(z, None, 5) for _ in range(20)])
                res[k].append(dict(n=len(g), gw=gw, gc=gc, ns=len(s_), sw=sw, sc=sc, mw=mw / 20, mc=mc / 20, busy=max(gb, sb, mb),
                                   same=g.token_id.tolist() == toks['without'].token_id.tolist(), cols=list(g.columns), scols=list(s_.columns)))
                r = res[k][-1]
                print(f"{k}: gen {r['n'] / r['gc']:.0f} tok/CPU-s ({r['n'] / r['gw']:.0f} tok/s), score {r['ns'] / r['sc']:.0f} tok/CPU-s "
                      f"({r['ns'] / r['sw']:.0f} tok/s), token_metrics {1e3 * r['mc']:.3f} CPU-ms, busy CPUs {r['busy']:.2f}", flush=True)
    load1 = os.getloadavg()
    base, new = res['without'], res['with']
    assert 'self_certainty' in new[0]['cols'] and 'self_certainty' not in base[0]['cols'] and 'self_certainty' in new[0]['scols']
    same = all(r['same'] for r in base + new)
    med = statistics.median
    rows = [('generation (engine.generate, greedy)', 'tokens per CPU second', lambda r: r['n'] / r['gc'], True),
            ('generation, wall clock', 'tokens/s', lambda r: r['n'] / r['gw'], True),
            ('scoring (engine.score, teacher-forced)', 'tokens per CPU second', lambda r: r['ns'] / r['sc'], True),
            ('scoring, wall clock', 'tokens/s', lambda r: r['ns'] / r['sw'], True),
            ('vocabulary work alone: token_metrics, greedy, [16, 32,000]', 'CPU ms per call', lambda r: 1e3 * r['mc'], False)]
    mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**20
    busy = [r['busy'] for r in base + new]
    lines = ['## Self-certainty (issue 29): engine time per token with and without it', '',
             f'Machine: {platform.machine()}, {os.cpu_count()} CPUs, {mem} MiB RAM, no GPU; torch {torch.__version__} (1 thread). '
             f'Date: {datetime.datetime.now(datetime.timezone.utc):%a %b %d %H:%M:%S UTC %Y}. Total benchmark time {time.time() - t_start:.0f} s.',
             f'**Shared machine**: load average (1/5/15 min) before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; '
             f'CPUs busy during the timed calls (whole machine, this process included; 1.0 = only it): median {med(busy):.2f}, max {max(busy):.2f}. '
             'So the wall-clock figures are only indicative; the CPU-time figures (this process\'s own CPU seconds) and the paired ratios are the measure.',
             f"Model: `bench_engine.build`'s random Qwen2 (hidden 512, 4 layers, vocabulary 32,000), float32; {a.prompts} prompts of "
             f'`bench_engine.make_prompts`, {a.new} new tokens, batch {a.batch}, `top_k_alternatives` 5; scoring teacher-forces those generations. '
             f'Without: the commit before the change (`git worktree add {a.base} HEAD`), with: this tree; both packages imported into one process '
             f'(the base one under another name), on the same loaded model, alternating call by call (the order swapped every repeat), {a.repeats} repeats.',
             f'Command: `python benchmarks/bench_self_certainty.py --base {a.base} --repeats {a.repeats}`', '',
             '| measure | unit | without (median) | with (median) | with / without, time per token (median of the paired repeats) | per repeat (without; with) |',
             '|---|---|---|---|---|---|']
    verdict = {}
    for label, unit, f, rate in rows:
        ratios = [(fb / fn if rate else fn / fb) for fb, fn in ((f(b), f(n)) for b, n in zip(base, new))]
        verdict[label] = med(ratios)
        lines.append(f'| {label} | {unit} | {med(f(r) for r in base):.4g} | {med(f(r) for r in new):.4g} | {med(ratios):.3f} | '
                     f'{", ".join(f"{f(r):.4g}" for r in base)}; {", ".join(f"{f(r):.4g}" for r in new)} |')
    lines += ['', '| target | value | |', '|---|---|---|']
    for label in ('generation (engine.generate, greedy)', 'scoring (engine.score, teacher-forced)'):
        v = verdict[label]
        lines.append(f'| {label}: CPU time per token rises by at most 5% | {100 * (v - 1):+.1f}% | {"PASS" if v <= 1.05 else "FAIL"} |')
    lines.append(f'| same generated tokens in every call, both trees | {"yes" if same else "no"} | {"PASS" if same else "FAIL"} |')
    lines += ['', 'Self-certainty is one more reduction (the row mean of the shifted logits) over the logits chunk `_moments` already '
              'holds, in the same pass as the entropy; a decoding step and a scoring chunk store one more float per token.']
    text = '\n'.join(lines)
    print(text)
    if not a.quick:
        from _results import write_section
        write_section('self_certainty', text)


if __name__ == '__main__':
    main()
