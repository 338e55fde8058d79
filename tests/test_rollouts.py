"""RL rollouts audited end to end: a tiny checkpoint's own sampled rollouts, rewarded where it liked them, a second checkpoint
made from it by policy-gradient steps on them, both imported with `score --generations`; the entropy mechanism (a positive
covariance of log-prob and advantage, entropy falling) and the engine-vs-checkpoint audit read from the run."""
import json, math
import numpy as np
import pytest

from reasoning_entropy.store import RunStore
from reasoning_entropy.report_items import report_run, need_note
from reasoning_entropy.rollouts import FLOAT32_FLOOR, WITHIN_FLOOR, BEYOND_FLOOR, group_advantages
from helpers import cli

N_PROMPTS, N_SAMPLES, LENGTH = 12, 4, 12


def _sample(model, prompt_ids, gen):
    "LENGTH tokens sampled from `model` at temperature 1 after `prompt_ids`, and their float32 log-probs."
    import torch
    ids, out, lps = torch.tensor([prompt_ids]), [], []
    with torch.no_grad():
        for _ in range(LENGTH):
            lp = torch.log_softmax(model(ids).logits[0, -1].float(), -1)
            t = int(torch.multinomial(lp.exp(), 1, generator=gen)); out.append(t); lps.append(float(lp[t]))
            ids = torch.cat([ids, torch.tensor([[t]])], 1)
    return out, lps


def _seq_logps(model, prompt_ids, resp):
    "The log-prob of each token of `resp` after `prompt_ids` under `model` (with gradient)."
    import torch
    ids = torch.tensor([prompt_ids + resp])
    lp = torch.log_softmax(model(ids).logits[0, len(prompt_ids) - 1:-1].float(), -1)
    return lp[torch.arange(len(resp)), torch.tensor(resp)]


@pytest.fixture(scope="module")
def rollout_run(tmp_path_factory):
    """Checkpoint A's rollouts (12 prompts × 4 samples), reward 1 for the samples A liked most (above its prompt's median
    log-prob), B = A after policy-gradient steps on them (loss −Σ A·logp), both scoring the rollouts through the CLI."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from reasoning_entropy.testing import make_tiny_checkpoint
    d = tmp_path_factory.mktemp("rollouts")
    a_path = make_tiny_checkpoint(d / "A", seed=3)
    tok, model = AutoTokenizer.from_pretrained(a_path), AutoModelForCausalLM.from_pretrained(a_path).eval()
    gen, rows, batch = torch.Generator().manual_seed(0), [], []
    for p in range(N_PROMPTS):
        prompt = tok(f"What is {p} + {p}?")["input_ids"]
        samples = [_sample(model, prompt, gen) for _ in range(N_SAMPLES)]
        score = np.array([sum(lps) for _, lps in samples])
        reward = (score > np.median(score)).astype(float)
        rows.append({"prompt_id": f"q{p}", "prompt_token_ids": prompt, "response_ids": [s for s, _ in samples],
                     "rollout_log_probs": [lps for _, lps in samples], "reward": reward.tolist()})
        batch += [(prompt, s, a) for (s, _), a in zip(samples, group_advantages(reward, [p] * N_SAMPLES))]
    model.train(); opt = torch.optim.SGD(model.parameters(), lr=2.0)
    for _ in range(3):
        opt.zero_grad()
        loss = -sum(a * _seq_logps(model, pr, s).sum() for pr, s, a in batch) / (len(batch) * LENGTH)
        loss.backward(); opt.step()
    b_path = d / "B"; model.eval().save_pretrained(b_path); tok.save_pretrained(b_path)
    f = d / "rollouts.jsonl"; f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = d / "run"
    r = cli("score", "--generations", f, "--model_paths", a_path, b_path, "--model_names", "A", "B", "--output_dir", out)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_positive_covariance_shows_entropy_falling(rollout_run):
    "A two-checkpoint sampled run built so that the covariance is positive shows entropy falling (both intervals exclude 0)."
    run = report_run(rollout_run)
    assert run.n_samples == N_SAMPLES and not run.unmet(("mechanism",))
    t = run.table("entropy_mechanism")
    assert t[["model", "next_model", "n_prompts", "sequences", "on_policy"]].values.tolist() == [["A", "B", N_PROMPTS, "engine", False]]
    r = t.iloc[0]
    assert r.covariance_ci_low > 0 and r.delta_entropy_ci_high < 0, t.T
    assert r.n_tokens == N_PROMPTS * N_SAMPLES * LENGTH
    tokens = run.table("entropy_mechanism_tokens")
    assert sorted(set(tokens.ratio)) == [2e-4, 2e-3] and set(tokens.model) == {"A", "B"}
    n = N_PROMPTS * N_SAMPLES * LENGTH
    assert (tokens.groupby(["ratio", "model"]).size() == tokens.ratio.map(lambda x: max(1, math.ceil(x * n))).groupby([tokens.ratio, tokens.model]).first()).all()


def test_engine_logprobs_audited_against_each_checkpoint(rollout_run):
    "The rollouts' own float32 log-probs: A reproduces them within the float32 floor, B (after the steps) is beyond it."
    run = report_run(rollout_run)
    if run.unmet(("engine_logprobs",)): pytest.skip("the import did not keep the engine log-probs (rollout_log_probs)")
    m = run.table("rollout_mismatch").set_index("model")
    assert m.n_tokens.tolist() == [N_PROMPTS * N_SAMPLES * LENGTH] * 2 and m.n_sequences.tolist() == [N_PROMPTS * N_SAMPLES] * 2
    assert m.loc["A", "float32_floor"] == WITHIN_FLOOR and m.loc["A", "mean_abs_dlogp_ci_high"] <= FLOAT32_FLOOR
    assert m.loc["B", "float32_floor"] == BEYOND_FLOOR and m.loc["B", "k3"] > 0
    d = run.table("rollout_mismatch_deciles")
    assert sorted(set(d.decile)) == list(range(1, 11)) and d.groupby("model").n_tokens.sum().tolist() == m.n_tokens.tolist()
