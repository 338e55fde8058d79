"`reasoning-entropy compare` end to end: the seed's invocations, every file against the store, kill and resume, float64 check."
import json, os, signal, subprocess, time
import numpy as np, pandas as pd
import pytest

from reasoning_entropy.store import RunStore, LEGACY_FILES
from helpers import cli, cli_popen

TOKEN_STATS_COLS = ["token", "count", "entropy_mean", "entropy_median", "entropy_std", "entropy_min", "entropy_max", "probability_mean",
                    "self_certainty_mean", "self_certainty_median", "self_certainty_std", "self_certainty_min", "self_certainty_max"]
PROMPT_COLS = ["prompt_id", "model", "n_tokens", "entropy_mean", "entropy_median", "entropy_std", "entropy_min", "entropy_max",
               "probability_mean", "finished", "generated_text", "extracted_answer", "reference_answer", "correct", "n_samples", "n_correct"]
DETAILED_COLS = ["prompt_id", "step", "token_id", "current_token", "next_token", "entropy", "logprob", "probability", "rank",
                 "varentropy", "top_ids", "top_logprobs", "sampling_entropy", "self_certainty"]
TIMING = ("seconds", "tokens_per_second", "progress", "wall_seconds", "completed", "created")


@pytest.fixture(scope="module")
def series(demo_checkpoints):
    "The demo checkpoint series (reduced build): the seed's invocations run on its paths."
    assert [p.name for p in demo_checkpoints] == [f"demo-checkpoint-{k}-of-10" for k in (1, 2, 4, 10)]
    return demo_checkpoints


def seed_files(out, names, detailed=False):
    "The original script's files of a run of `names` in `out` (with `detailed`, the detailed token files too)."
    st = RunStore(out)
    return sorted([st.legacy_path("token_stats", n) for n in names] + [st.legacy_path(f) for f in LEGACY_FILES]
                  + ([st.legacy_path("all_tokens_detailed", n) for n in names] if detailed else []))


def strip_timing(obj):
    if isinstance(obj, dict): return {k: strip_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list): return [strip_timing(v) for v in obj]
    return obj


def test_seed_basic_usage_two_models(series, tmp_path):
    "python model_comparison_analysis.py --model_paths M1 M2 --model_names Base Finetuned (small counts)"
    out = tmp_path / "results"
    r = cli("compare", "--model_paths", series[0], series[3], "--model_names", "Base", "Finetuned", "--num_examples", 5,
            "--max_new_tokens", 10, "--output_dir", out)
    assert r.returncode == 0, r.stderr[-2000:]
    st = RunStore(out)
    data = st.tokens_dir.parent  # data/
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in seed_files(out, ["Base", "Finetuned"]) + [data, st.manifest_path])
    assert sorted(data.iterdir()) == sorted([st.generations_dir, st.prompts_path, st.tokens_dir, st.ledger_path])
    tokens = pd.read_parquet(st.tokens_dir)
    gens = pd.read_parquet(st.generations_dir)
    assert sorted(tokens.model.astype(str).unique()) == ["Base", "Finetuned"]
    assert len(gens) == 10 and len(tokens) == gens.n_tokens.sum()
    for name in ("Base", "Finetuned"):
        ts = pd.read_csv(st.legacy_path("token_stats", name), keep_default_na=False)
        assert list(ts.columns) == TOKEN_STATS_COLS
        t = tokens[tokens.model == name]
        assert ts["count"].sum() == len(t)
        top = ts.iloc[0]
        sel = t[t.next_token == top.token]
        assert top["count"] == len(sel)
        np.testing.assert_allclose(top.entropy_mean, sel.entropy.mean(), rtol=1e-9)
        np.testing.assert_allclose(top.entropy_max, sel.entropy.max(), rtol=1e-9)
    plr = pd.read_csv(st.legacy_path("prompt_level_results.csv"), dtype={"prompt_id": str})
    assert list(plr.columns) == PROMPT_COLS and len(plr) == 10
    row = plr[(plr.model == "Base") & (plr.prompt_id == "0")].iloc[0]
    t0 = tokens[(tokens.model == "Base") & (tokens.prompt_id == "0")]
    assert row.n_tokens == len(t0)
    np.testing.assert_allclose(row.entropy_mean, t0.entropy.mean(), rtol=1e-9)
    np.testing.assert_allclose(row.probability_mean, t0.probability.mean(), rtol=1e-9)
    s = json.loads(st.legacy_path("results_summary.json").read_text())
    for name in ("Base", "Finetuned"):
        m = s["models"][name]
        t = tokens[tokens.model == name]
        assert m["tokens_analyzed"] == len(t)
        np.testing.assert_allclose(m["entropy"]["mean"], t.entropy.mean(), rtol=1e-9)
        np.testing.assert_allclose(m["entropy"]["quantiles"]["0.9"], t.entropy.quantile(0.9), rtol=1e-9)
        assert m["num_prompts"] == 5 and m["generation_length"]["max"] <= 10
        assert m["tokens_per_second"] > 0
    assert s["decoding"]["do_sample"] is False and s["decoding"]["max_new_tokens"] == 10


def test_seed_four_checkpoints_detailed_and_float64(series, tmp_path):
    "The seed's 4-checkpoint invocation with --save_detailed_tokens; detailed values against a float64 recomputation."
    import torch
    from transformers import AutoModelForCausalLM
    names = ["Checkpoint_1", "Checkpoint_2", "Checkpoint_4", "Checkpoint_10"]
    out = tmp_path / "results"
    r = cli("compare", "--model_paths", *series, "--model_names", *names, "--num_examples", 4, "--max_new_tokens", 12,
            "--save_detailed_tokens", "--output_dir", out)
    assert r.returncode == 0, r.stderr[-2000:]
    st = RunStore(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in seed_files(out, names, True) + [st.tokens_dir.parent, st.manifest_path])
    gens = pd.read_parquet(st.generations_dir)
    for name, path in zip(names, series):
        det = pd.read_csv(st.legacy_path("all_tokens_detailed", name), dtype={"prompt_id": str}, keep_default_na=False)
        assert list(det.columns) == DETAILED_COLS
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64).eval()
        for g in gens[gens.model == name].itertuples():
            p, c = list(g.prompt_token_ids), list(g.generated_token_ids)
            with torch.no_grad():
                z = model(torch.tensor([p + c])).logits[0, len(p) - 1: len(p) + len(c) - 1]
            logp = torch.log_softmax(z, -1)
            ent = -(logp.exp() * logp).sum(-1).numpy()
            sc = (-logp.mean(-1) - np.log(z.shape[-1])).numpy()  # self-certainty, KL(U || p)
            chosen = logp[torch.arange(len(c)), torch.tensor(c)].numpy()
            rank = (z > z[torch.arange(len(c)), torch.tensor(c)][:, None]).sum(-1).numpy() + 1
            d = det[det.prompt_id == g.prompt_id].sort_values("step")
            assert list(d.token_id) == c and list(d.step) == list(range(1, len(c) + 1))
            assert np.abs(d.entropy.to_numpy() - ent).max() <= 1e-4
            assert np.abs(d.self_certainty.to_numpy() - sc).max() <= 1e-4
            assert np.abs(d.logprob.to_numpy() - chosen).max() <= 1e-4
            assert list(d["rank"]) == list(rank)
            assert json.loads(d.top_ids.iloc[0])[0] == int(z[0].argmax())


def snapshot(out):
    "What a run's outputs hold, timings aside."
    names = sorted(p.name for p in out.iterdir() if p.suffix in (".csv",))
    files = {n: (out / n).read_bytes() for n in names}
    st = RunStore(out)
    tok = pd.read_parquet(st.tokens_dir)
    tok["model"] = tok.model.astype(str)
    tok = tok.sort_values(["model", "prompt_id", "step"]).reset_index(drop=True)
    summary = strip_timing(json.loads(st.legacy_path("results_summary.json").read_text()))
    return files, tok, summary


def test_kill_and_resume_equals_uninterrupted(series, tmp_path):
    args = ["compare", "--model_paths", series[0], series[1], "--model_names", "A", "B", "--num_examples", 16,
            "--max_new_tokens", 24, "--batch_size", 2, "--save_detailed_tokens"]
    ref = tmp_path / "ref"
    assert cli(*args, "--output_dir", ref).returncode == 0
    out = tmp_path / "killed"
    proc = cli_popen(*args, "--output_dir", out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = RunStore(out).generations_dir / "model=B"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if parts.exists() and len(list(parts.glob("part-*.parquet"))) >= 2: break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL); proc.wait()
    assert not RunStore(out).legacy_path("prompt_level_results.csv").exists()       # nothing derived was half-written
    n_before = len(list(parts.glob("part-*.parquet")))
    r = cli(*args, "--output_dir", out)
    assert r.returncode == 0, r.stderr[-2000:]
    f1, t1, s1 = snapshot(ref)
    f2, t2, s2 = snapshot(out)
    assert sorted(f1) == sorted(f2) and all(f1[n] == f2[n] for n in f1), [n for n in f1 if f1[n] != f2.get(n)]
    pd.testing.assert_frame_equal(t1, t2)
    assert s1["models"] == s2["models"]
    assert n_before >= 2
