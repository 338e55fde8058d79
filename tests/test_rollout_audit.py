"""Rollouts audited through the command line: the kit's own generations exported in vLLM's layout with their log-probs,
imported back (`score --generations`), the engine's log-probs kept, told raw from processed, and audited by the report
(`tables/rollout_mismatch.csv`); a count that does not match refused with its line; `score --samples all`."""
import json
import numpy as np, pandas as pd
import pytest

from reasoning_entropy.store import RunStore
from reasoning_entropy.rollouts import BEYOND_FLOOR, WITHIN_FLOOR
from helpers import cli


def vllm_rows(store: RunStore, model: str, column: str = "logprob", top: bool = True) -> list:
    """`model`'s generations in vLLM's JSON layout, one request per prompt and one output per sample, each position's
    `logprobs` a dict from token id (a string, as JSON writes it) to {logprob, rank, decoded_token}: the sampled token's
    entry holds the run's `column`, the others its top alternatives (their log-probs at temperature 1)."""
    g, t = store.read_generations([model]), store.read_tokens([model])
    tok = {k: v for k, v in t.groupby(["prompt_id", "sample"], sort=False)}
    rows = {}
    for r in g.itertuples():
        tt = tok.get((r.prompt_id, r.sample))
        lps = []
        for x in (tt.itertuples() if tt is not None else []):
            d = {str(int(i)): {"logprob": float(v), "rank": k + 1, "decoded_token": ""} for k, (i, v) in enumerate(zip(x.top_ids, x.top_logprobs))} if top else {}
            d[str(int(x.token_id))] = {"logprob": float(getattr(x, column)), "rank": int(x.rank), "decoded_token": x.current_token}
            lps.append(d)
        out = {"index": int(r.sample), "text": r.generated_text, "token_ids": [int(i) for i in r.generated_token_ids],
               "finish_reason": "stop" if r.finished else "length", "logprobs": lps,
               "cumulative_logprob": float(sum(next(v["logprob"] for k, v in d.items() if int(k) == i) for d, i in zip(lps, r.generated_token_ids)))}
        rows.setdefault(r.prompt_id, {"request_id": r.prompt_id, "prompt": r.prompt_text,
                                      "prompt_token_ids": [int(i) for i in r.prompt_token_ids], "outputs": []})["outputs"].append(out)
    return list(rows.values())


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows)); return path


def sampled_run(ckpt, out, dtype, *extra):
    "A sampled run of one tiny checkpoint: 4 prompts, 2 samples each, 12 new tokens, in `dtype`."
    cli("compare", "--model_paths", ckpt, "--model_names", "A", "--num_examples", 4, "--max_new_tokens", 12, "--do_sample",
        "--num_samples", 2, "--seed", 3, "--dtype", dtype, "--output_dir", out, *extra, check=True)
    return RunStore(out)


def imported(gen_file, ckpt, out, *extra):
    r = cli("score", "--generations", gen_file, "--model_paths", ckpt, "--model_names", "A", "--output_dir", out, "--dtype", "float32", *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    return RunStore(out)


def test_float32_rollouts_match_and_bfloat16_ones_do_not(tiny_pair, tmp_path):
    """Generations made in float32, exported with their log-probs and imported in float32, agree with the checkpoint to
    1e-4 per token; the same made in bfloat16 are off-policy: k3 > 0 in the report's `tables/rollout_mismatch.csv`."""
    a = tiny_pair[0]
    for dtype in ("float32", "bfloat16"):
        run = sampled_run(a, tmp_path / f"gen-{dtype}", dtype)
        st = imported(write_jsonl(tmp_path / f"{dtype}.jsonl", vllm_rows(run, "A")), a, tmp_path / f"imp-{dtype}")
        t = st.read_tokens(["A"])
        assert t.engine_logprob.notna().all() and len(t) == len(run.read_tokens(["A"]))
        assert all(len(x) >= 5 for x in t.engine_top_ids)  # the top alternatives, and their scored log-probs beside them
        np.testing.assert_allclose(np.stack(t.engine_top_scored_logprobs.map(lambda v: v[:5])), np.stack(t.engine_top_logprobs.map(lambda v: v[:5])),
                                   atol=1e-4 if dtype == "float32" else 0.5)
        info = st.imported["engine_logprobs"]
        assert info["present"] and info["mode"] == "same" and info["compared_on"] == "A"
        dlp = np.abs(t.engine_logprob - t.logprob)
        if dtype == "float32": assert dlp.max() <= 1e-4, dlp.max()
        r = cli("report", "--run_dir", st.dir)
        assert r.returncode == 0, r.stderr[-3000:]
        mm = pd.read_csv(st.table_path("rollout_mismatch"))
        assert {"model", "n_sequences", "n_tokens", "k1", "k3", "chi2_token", "chi2_seq", "ess", "share_rho_above_2", "share_rho_below_half"} <= set(mm.columns)
        row = mm.set_index("model").loc["A"]
        assert (row.n_sequences, row.n_tokens) == (8, len(t))
        html = (st.dir / "report.html").read_text()
        assert "Rollout engine against checkpoint" in html  # a key finding with one checkpoint: the audit of its rollouts
        if dtype == "bfloat16": assert row.k3 > 0 and dlp.mean() > 1e-4 and row.float32_floor == BEYOND_FLOOR, (row.k3, dlp.mean(), row.float32_floor)
        else: assert abs(row.k1) <= 1e-4 and row.k3 <= 1e-8 and row.float32_floor == WITHIN_FLOOR


def test_raw_and_processed_logprobs_told_apart_at_temperature_0_7(tiny_pair, tmp_path):
    """Rollouts sampled at temperature 0.7: a file holding the raw log-probs (temperature 1) is told 'raw', one holding the
    log-probs of the distribution sampled (divided by 0.7) is told 'processed', both recorded in the manifest."""
    a = tiny_pair[0]
    run = sampled_run(a, tmp_path / "gen", "float32", "--temperature", 0.7)
    raw = imported(write_jsonl(tmp_path / "raw.jsonl", vllm_rows(run, "A", top=False)), a, tmp_path / "raw", "--temperature", 0.7)
    info = raw.imported["engine_logprobs"]
    assert (info["mode"], info["temperature"]) == ("raw", 0.7) and info["mean_abs_diff_raw"] <= 1e-4 < info["mean_abs_diff_processed"]
    t = raw.read_tokens(["A"])
    assert (t.sampling_entropy < t.entropy).mean() > 0.9  # sharper at 0.7: the entropy of the distribution sampled, beside the raw one
    # the same rollouts with the processed log-probs: the import's own `sampling_logprob` (checked against float64 in the engine)
    proc_rows = vllm_rows(raw, "A", column="sampling_logprob", top=False)
    proc = imported(write_jsonl(tmp_path / "processed.jsonl", proc_rows), a, tmp_path / "processed", "--temperature", 0.7)
    info = proc.imported["engine_logprobs"]
    assert info["mode"] == "processed" and info["mean_abs_diff_processed"] <= 1e-4 < info["mean_abs_diff_raw"]
    assert RunStore(tmp_path / "processed").identity["decoding"] == {"temperature": 0.7, "top_p": 1.0, "top_k": 0}


def test_engine_logprob_count_must_match_the_tokens(tiny_pair, tmp_path):
    "A position missing from a vLLM output's log-probs: one line naming the file and line, status 2, no run; nothing half-written."
    a = tiny_pair[0]
    run = sampled_run(a, tmp_path / "gen", "float32")
    rows = vllm_rows(run, "A", top=False)
    rows[1]["outputs"][0]["logprobs"] = rows[1]["outputs"][0]["logprobs"][:-1]
    f = write_jsonl(tmp_path / "short.jsonl", rows)
    r = cli("score", "--generations", f, "--model_paths", a, "--output_dir", tmp_path / "bad")
    assert r.returncode == 2, r.stderr[-2000:]
    line = r.stderr.strip().splitlines()[-1]
    assert f"{f}:2" in line and "logprobs" in line, line
    assert not (tmp_path / "bad").exists()


def test_score_samples_all_scores_every_sample(tiny_pair, tmp_path):
    """`score --samples all` on a sampled run: every sample of the first checkpoint's generations is scored by both
    checkpoints (the other samples in their own part), and the first checkpoint's values are its generation-time ones."""
    a, b = tiny_pair
    cli("compare", "--model_paths", a, b, "--model_names", "A", "B", "--num_examples", 3, "--max_new_tokens", 8, "--do_sample",
        "--num_samples", 3, "--seed", 1, "--output_dir", tmp_path / "run", check=True)
    cli("score", "--run_dir", tmp_path / "run", "--samples", "all", check=True)
    st = RunStore(tmp_path / "run")
    own = st.read_tokens(["A"])
    sc = st.read_scored(samples="all")
    assert sorted(set(sc["sample"])) == [0, 1, 2] and st.scored_rows("B") == len(own)
    got = sc[sc.model == "A"].reset_index(drop=True)
    assert list(zip(got.prompt_id, got["sample"], got.step, got.token_id)) == list(zip(own.prompt_id, own["sample"], own.step, own.token_id))
    assert np.abs(got.entropy.to_numpy() - own.entropy.to_numpy()).max() <= 1e-4
    assert set(st.read_scored()["sample"]) == {0}  # the aligned analyses' positions: sample 0
    r = cli("score", "--run_dir", tmp_path / "run", log_level="INFO")  # no --samples: as the run was last scored
    assert r.returncode == 0 and "every checkpoint is scored already" in r.stderr
    assert st.scoring_state()["samples"] == "all" and st.scored_rows("B") == len(own)


def test_entropy_mechanism_of_a_generated_run(tiny_pair, tmp_path):
    """A sampled run the kit generated, scored with `--samples all`: the report's entropy mechanism pairs A -> B on A's
    own rollouts (on policy), and its covariance and entropy change equal an in-memory recomputation from the scored tokens."""
    from reasoning_entropy.report_items import report_run
    a, b = tiny_pair
    run = tmp_path / "run"
    cli("compare", "--model_paths", a, b, "--model_names", "A", "B", "--num_examples", 4, "--max_new_tokens", 8, "--do_sample",
        "--num_samples", 3, "--seed", 5, "--output_dir", run, check=True)
    cli("report", "--run_dir", run, "--samples", "all", check=True)
    st = RunStore(run)
    mech = pd.read_csv(st.table_path("entropy_mechanism"))
    assert len(mech) == 1
    row = mech.iloc[0]
    assert (row.model, row.next_model, row.sequences, bool(row.on_policy), row.n_prompts) == ("A", "B", "A", True, 4)
    sc = st.read_scored(samples="all")
    ta, tb = (sc[sc.model == m].set_index(["prompt_id", "sample", "step"]) for m in ("A", "B"))
    rw = report_run(run).rewards.query("model == 'A'").set_index(["prompt_id", "sample"]).reward
    g = rw.groupby(level="prompt_id")
    adv = (rw - g.transform("mean")) / (g.transform(lambda x: x.std(ddof=0)) + 1e-6)
    A = adv.reindex(ta.index.droplevel("step")).to_numpy()
    c = (ta.logprob.to_numpy() - ta.logprob.mean()) * (A - A.mean())
    assert abs(row.covariance - c.mean()) <= 1e-9 and row.n_tokens == len(ta)
    assert abs(row.delta_entropy - (tb.entropy.loc[ta.index].to_numpy() - ta.entropy.to_numpy()).mean()) <= 1e-9
    assert row.covariance_ci_low <= row.covariance <= row.covariance_ci_high
