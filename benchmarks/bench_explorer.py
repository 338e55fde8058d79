"""Explorer open time on a run of 1000 prompts x 10 checkpoints (synthesised; no generation).

python benchmarks/bench_explorer.py [--prompts 1000] [--models 10] [--steps 256]
Prints the seconds to build the run, to open `Explorer(run)` (first view rendered), to switch prompt, rank and filter
the prompt table, and the kB of HTML one update sends for 4 checkpoints x ~1,000 tokens."""
import argparse, datetime, os, platform, subprocess, sys, tempfile, time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--steps", type=int, default=256)
    a = ap.parse_args()
    import matplotlib; matplotlib.use("Agg")
    from reasoning_entropy.testing import synthetic_run_dir
    from reasoning_entropy.explorer import Explorer
    import pandas as pd
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    run = synthetic_run_dir(tmp / "run", n_prompts=a.prompts, models=[f"Checkpoint_{i+1}" for i in range(a.models)],
                            max_steps=a.steps, batch=64)
    t_build = time.perf_counter() - t0
    n_rows = sum(pd.read_parquet(f, columns=["step"]).shape[0] for f in (run / "data" / "tokens").rglob("*.parquet"))
    size = sum(f.stat().st_size for f in (run / "data" / "tokens").rglob("*.parquet"))
    t0 = time.perf_counter(); ex = Explorer(run); t_open = time.perf_counter() - t0
    t0 = time.perf_counter(); ex.w_prompt.value = str(a.prompts // 2); t_switch = time.perf_counter() - t0
    switches = []
    for pid in (a.prompts // 3, a.prompts // 4, a.prompts - 1, 7, a.prompts // 5):  # several switches: the slowest is the figure
        t0 = time.perf_counter(); ex.w_prompt.value = str(pid); switches.append(time.perf_counter() - t0)
    t_switch = max(t_switch, *switches)
    t0 = time.perf_counter(); ex.rank_by_change("Checkpoint_1", f"Checkpoint_{a.models}"); t_rank = time.perf_counter() - t0
    t0 = time.perf_counter(); ex.w_wrong.value, ex.w_right.value = "Checkpoint_1", f"Checkpoint_{a.models}"; t_filter = time.perf_counter() - t0
    # HTML of one update with 4 checkpoints x ~1,000 tokens: a run whose generations reach 1,000 tokens
    long = synthetic_run_dir(tmp / "long", n_prompts=20, models=["Checkpoint_1", "Checkpoint_2", "Checkpoint_4", "Checkpoint_10"],
                             max_steps=1000, batch=20)
    lt = pd.read_parquet(long / "data" / "tokens", columns=["prompt_id", "model"])
    n_by = lt.groupby("prompt_id", observed=True).size()
    pid = str(n_by.idxmax()); n_tok = int(n_by.max())
    exl = Explorer(long, prompt=pid)
    html_bytes = len(exl.w_html.value.encode()) + len(exl.w_info.value.encode())
    exl.w_metric.value = "probability"
    html_bytes_p = len(exl.w_html.value.encode()) + len(exl.w_info.value.encode())
    cpu = subprocess.run("lscpu | grep 'Model name' | cut -d: -f2", shell=True, capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()[0]
    lines = ['## Explorer', '',
             f"Machine: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load:.2f} at the start. "
             f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
             f"Command: `python benchmarks/bench_explorer.py --prompts {a.prompts} --models {a.models} --steps {a.steps}`", '',
             f"Run (synthesised, no generation): {a.prompts} prompts × {a.models} checkpoints, {n_rows} token rows, "
             f"{size/2**20:.1f} MiB of token Parquet.", '',
             '| measure | seconds | target | |', '|---|---|---|---|',
             f"| open `Explorer(run)`, first view rendered | {t_open:.2f} | < 5 | {'PASS' if t_open < 5 else 'FAIL'} |",
             f"| switch prompt, slowest of 6 (reads that prompt's rows only) | {t_switch:.2f} | ≤ 0.5 | {'PASS' if t_switch <= 0.5 else 'FAIL'} |",
             f"| rank prompts by Δentropy between two checkpoints (table re-sorted, view redrawn) | {t_rank:.2f} | | |",
             f"| filter the prompt table: wrong at Checkpoint_1, right at Checkpoint_{a.models} (two changes) | {t_filter:.2f} | | |",
             '', '| HTML per update, 4 checkpoints | kB | target | |', '|---|---|---|---|',
             f"| entropy view of prompt {pid}: {n_tok} token rows ({n_tok / 4:.0f} per checkpoint), heatmap + prompt text | {html_bytes / 1000:.0f} | ≤ 300 | {'PASS' if html_bytes <= 300_000 else 'FAIL'} |",
             f"| the same, probability view | {html_bytes_p / 1000:.0f} | ≤ 300 | {'PASS' if html_bytes_p <= 300_000 else 'FAIL'} |"]
    sys.path.insert(0, str(Path(__file__).resolve().parent)); from _results import write_section
    print(write_section('bench_explorer', '\n'.join(lines)))


if __name__ == "__main__":
    main()
