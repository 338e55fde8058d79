"""The report and the explorer at RL scale: synthetic runs of about 1, 10 and 100 million token rows.

python benchmarks/bench_report_scale.py [--sizes 1M 10M 100M] [--workdir DIR] [--keep]

Each run is made on the fly with `testing.synthetic_run_dir` (generations of 64-256 tokens) and removed afterwards.
Each measure runs in its own process under `/usr/bin/time -v`: wall seconds, and the peak resident memory of the
largest process of its tree (for the report: the papermill kernel that computes it).
- report: `execute_report` (papermill, the installed template) then `export_html`, as `reasoning-entropy report`
  does after compare and score;
- explorer: `Explorer(run)` opened (first view rendered), then 5 prompt switches.
Run it alone: two cores shared with another job halve every figure."""
import argparse, datetime, os, platform, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import publish

SHAPES = {  # name: (prompts, checkpoints, samples)
    '1M': (500, 4, 4),
    '10M': (1000, 10, 8),
    '100M': (4000, 10, 16),
}
TARGETS = dict(memory_gb=3.0, report_10M_s=303 / 3, report_100M_s=20 * 60, open_s=5.0, switch_s=1.0)
BEFORE = {'1M': (43, 1.37), '10M': (303, 10.9)}  # the figures on main before (report s, peak GB)

BUILD = """
import sys
from reasoning_entropy.testing import synthetic_run_dir
n, m, s = map(int, sys.argv[2:5])
synthetic_run_dir(sys.argv[1], n_prompts=n, models=[f'Checkpoint_{i+1}' for i in range(m)], max_steps=256, samples=s, batch=200, legacy=False)
"""
REPORT = """
import sys
from reasoning_entropy.report import execute_report, export_html
export_html(execute_report(sys.argv[1]))
"""
EXPLORER = """
import sys, time, json
import matplotlib; matplotlib.use('Agg')
t0 = time.perf_counter()
from reasoning_entropy.explorer import Explorer
ex = Explorer(sys.argv[1]); t_open = time.perf_counter() - t0
n = int(sys.argv[2]); switches = []
for pid in (n // 2, n // 3, n - 1, 7, n // 5):
    t0 = time.perf_counter(); ex.w_prompt.value = str(pid); switches.append(time.perf_counter() - t0)
print('TIMES', json.dumps(dict(open_s=t_open, switch_s=switches)))
"""


def timed(code: str, *args, env: dict | None = None) -> dict:
    "Run `code` in a fresh Python under /usr/bin/time -v (environment: this one plus `env`): wall seconds, peak RSS (GB) of its largest process, stdout."
    t0 = time.perf_counter()
    p = subprocess.run(['/usr/bin/time', '-v', sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})))
    wall = time.perf_counter() - t0
    if p.returncode: sys.exit(f"failed ({p.returncode}):\n{p.stderr[-3000:]}")
    rss = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', p.stderr).group(1)) / 2**20
    return dict(wall_s=wall, peak_gb=rss, stdout=p.stdout)


def rows_and_bytes(run: Path) -> tuple:
    "(token rows, bytes of token Parquet) of a run."
    import pyarrow.parquet as pq
    files = list((run / 'data' / 'tokens').rglob('*.parquet'))
    return sum(pq.read_metadata(f).num_rows for f in files), sum(f.stat().st_size for f in files)


def measure(name: str, work: Path, keep: bool) -> dict:
    "Build the run of shape `name`, time its report and its explorer, remove it."
    n, m, s = SHAPES[name]
    run = work / f'run_{name}'
    shutil.rmtree(run, ignore_errors=True)
    build = timed(BUILD, run, n, m, s, env=dict(OMP_NUM_THREADS='1'))
    rows, size = rows_and_bytes(run)
    print(f'{name}: {rows} rows built in {build["wall_s"]:.0f} s', flush=True)
    rep = timed(REPORT, run)
    print(f'{name}: report {rep["wall_s"]:.0f} s, peak {rep["peak_gb"]:.2f} GB', flush=True)
    import json
    ex = timed(EXPLORER, run, n)
    t = json.loads(ex['stdout'].split('TIMES', 1)[1])
    print(f'{name}: explorer open {t["open_s"]:.2f} s, switches {max(t["switch_s"]):.2f} s, peak {ex["peak_gb"]:.2f} GB', flush=True)
    if not keep: shutil.rmtree(run)
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    return dict(name=name, shape=(n, m, s), rows=rows, size=size, build_s=build['wall_s'], report_s=rep['wall_s'],
                report_gb=rep['peak_gb'], open_s=t['open_s'], switch_s=max(t['switch_s']), explorer_gb=ex['peak_gb'],
                date=f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}", commit=commit)


SAVED = Path(__file__).resolve().parent / 'bench_report_scale.json'  # every size's latest result (a run of some sizes keeps the others')


def merged(results: list) -> list:
    "`results` with the saved results of the sizes not run this time, in SHAPES order; saved again."
    import json
    old = {r['name']: r for r in (json.loads(SAVED.read_text()) if SAVED.exists() else [])}
    old.update({r['name']: r for r in results})
    out = [old[k] for k in SHAPES if k in old]
    SAVED.write_text(json.dumps(out, indent=1) + '\n')
    return out


def verdict(ok: bool) -> str: return 'PASS' if ok else 'FAIL'


def table(results: list) -> list:
    "The markdown rows of the results, with the targets of issue 26."
    T = TARGETS
    out = ['| run | token rows | Parquet | report s | report peak GB | explorer open s | slowest switch s | explorer peak GB | before (report s, peak GB) | measured (UTC, commit) |',
           '|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        n, m, s = r['shape']; b = BEFORE.get(r['name'])
        out.append(f"| {n} prompts × {m} checkpoints × {s} samples | {r['rows']:,} | {r['size'] / 2**30:.2f} GiB | {r['report_s']:.0f} | "
                   f"{r['report_gb']:.2f} | {r['open_s']:.2f} | {r['switch_s']:.2f} | {r['explorer_gb']:.2f} | {f'{b[0]} s, {b[1]} GB' if b else '(out of memory)'} | {r.get('date', '')} {r.get('commit', '')} |")
    out += ['', '| target | measured | |', '|---|---|---|']
    for r in results:
        out.append(f"| {r['name']}: report peak ≤ {T['memory_gb']} GB | {r['report_gb']:.2f} GB | {verdict(r['report_gb'] <= T['memory_gb'])} |")
        out.append(f"| {r['name']}: explorer open < {T['open_s']:.0f} s, switch < {T['switch_s']:.0f} s, peak ≤ {T['memory_gb']} GB | "
                   f"{r['open_s']:.2f} s, {r['switch_s']:.2f} s, {r['explorer_gb']:.2f} GB | "
                   f"{verdict(r['open_s'] < T['open_s'] and r['switch_s'] < T['switch_s'] and r['explorer_gb'] <= T['memory_gb'])} |")
        if r['name'] == '10M':
            out.append(f"| 10M: report ≥ 3× faster than before (303 s → ≤ 101 s) | {r['report_s']:.0f} s ({303 / r['report_s']:.1f}×) | {verdict(r['report_s'] <= T['report_10M_s'])} |")
        if r['name'] == '100M':
            out.append(f"| 100M: report < 20 min | {r['report_s'] / 60:.1f} min | {verdict(r['report_s'] < T['report_100M_s'])} |")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', nargs='+', default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument('--workdir', default=None, help='where to build the runs (default: a temporary directory)')
    ap.add_argument('--keep', action='store_true', help='keep the runs')
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix='bench_scale_')); work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = merged([measure(name, work, a.keep) for name in a.sizes])
    cpu = subprocess.run("lscpu | grep 'Model name' | cut -d: -f2", shell=True, capture_output=True, text=True).stdout.strip()
    import duckdb, pandas
    lines = ['## Report at scale (out of core)', '',
             f"Machine: {cpu}, {os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
             f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, pandas {pandas.__version__}. "
             f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC (each row: when and at which commit it was measured). This invocation took {time.perf_counter() - t0:.0f} s.",
             f"Command: `python benchmarks/bench_report_scale.py --sizes {' '.join(a.sizes)}`", '',
             "Runs made by `testing.synthetic_run_dir` (generations of 64–256 tokens, 200 prompts per part), then removed. "
             "Report: papermill on the installed template + HTML, in a fresh process with the default environment (every core "
             "for DuckDB and BLAS); peak = the largest process of its tree (`/usr/bin/time -v`). Explorer: `Explorer(run)` opened (first view rendered), then 5 prompt switches.", ''] + table(results)
    publish('bench_report_scale', lines)


if __name__ == '__main__':
    main()
