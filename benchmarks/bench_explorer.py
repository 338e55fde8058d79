"""Explorer open time on a run of 1000 prompts x 10 checkpoints (synthesised; no generation).

python benchmarks/bench_explorer.py [--prompts 1000] [--models 10] [--steps 256]
Prints the seconds to build the run, to open `Explorer(run)` (first view rendered) and to switch prompt,
and the bytes of token data read for one view versus the whole store."""
import argparse, platform, subprocess, tempfile, time, datetime
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
    t0 = time.perf_counter(); ex.rank_by_change("Checkpoint_1", f"Checkpoint_{a.models}"); t_rank = time.perf_counter() - t0
    cpu = subprocess.run("lscpu | grep 'Model name' | cut -d: -f2", shell=True, capture_output=True, text=True).stdout.strip()
    print(f"machine: {cpu}, {platform.python_version()}; date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"run: {a.prompts} prompts x {a.models} checkpoints, {n_rows} token rows, {size/2**20:.1f} MiB of token Parquet (built in {t_build:.1f} s)")
    print(f"open Explorer (first view rendered): {t_open:.2f} s")
    print(f"switch prompt: {t_switch:.2f} s; rank prompts by change: {t_rank:.2f} s")


if __name__ == "__main__":
    main()
