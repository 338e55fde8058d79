"""`score --generations`: generations made elsewhere (vLLM, chat completions, verl/TRL rollouts, conversations) imported and scored
exactly by every checkpoint, through the command line; the round-trip check; bad input (one line, status 2, nothing written)."""
import json
from pathlib import Path
import numpy as np, pandas as pd
import pytest

from reasoning_entropy.store import RunStore, LEGACY_FILES
from helpers import cli


def imported(gen_file, ckpts, names, out, *extra):
    "Run `score --generations` and return the run's store (asserting success)."
    r = cli("score", "--generations", gen_file, "--model_paths", *ckpts, "--model_names", *names, "--output_dir", out, *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == f"imported run: {out}"
    return RunStore(out)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows)); return path


@pytest.fixture(scope="module")
def greedy_run(tiny_pair, tmp_path_factory):
    "A greedy run of the two tiny checkpoints: 4 prompts of the bundled sample, 10 new tokens."
    from reasoning_entropy.compare import compare
    a, b = tiny_pair
    return compare([a, b], model_names=["A", "B"], num_examples=4, max_new_tokens=10, output_dir=tmp_path_factory.mktemp("greedy") / "run")


@pytest.fixture(scope="module")
def tok(tiny_pair):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_pair[0])


def test_vllm_layout_reproduces_the_runs_entropies(greedy_run, tiny_pair, tmp_path):
    """A run's greedy generations exported to vLLM's layout (4 outputs per prompt: A's generation, B's, and two cut-off
    prefixes of A's) and imported back: each checkpoint's values on its own generation are its generation-time values."""
    run = RunStore(greedy_run)
    g = {m: run.read_generations([m]).set_index("prompt_id") for m in ("A", "B")}
    rows = []
    for pid, a in g["A"].iterrows():
        b = g["B"].loc[pid]
        out = lambda i, ids, text, reason: {"index": i, "text": text, "token_ids": [int(x) for x in ids], "finish_reason": reason,
                                            "cumulative_logprob": None, "logprobs": None}
        rows.append({"request_id": pid, "prompt": a.prompt_text, "prompt_token_ids": [int(x) for x in a.prompt_token_ids],
                     "outputs": [out(0, a.generated_token_ids, a.generated_text, "stop" if a.finished else "length"),
                                 out(1, b.generated_token_ids, b.generated_text, "stop" if b.finished else "length"),
                                 out(2, a.generated_token_ids[:3], "", "length"), out(3, a.generated_token_ids[:7], "", "length")]})
    # the cut-off outputs keep their ids but no text: ids without text are taken as the checkpoint's own
    for r in rows: r["outputs"][2].pop("text"); r["outputs"][3].pop("text")
    f = write_jsonl(tmp_path / "vllm_outputs.jsonl", rows)
    out = tmp_path / "imported"
    st = imported(f, tiny_pair, ["A", "B"], out)
    assert st.imported["layout"] == "vllm" and st.imported["samples"] == 4 and st.imported["prompts"] == len(rows)
    assert st.models == ["A", "B"] and st.is_complete()
    gen = st.read_generations()
    assert len(gen) == 2 * 4 * len(rows) and sorted(set(gen["sample"])) == [0, 1, 2, 3]
    assert list(gen[gen["sample"] == 2].finished) == [False] * (2 * len(rows))
    tokens, worst = st.read_tokens(), 0.0
    for m, smp in (("A", 0), ("B", 1)):
        want = run.read_tokens([m])
        got = tokens[(tokens.model == m) & (tokens["sample"] == smp)].reset_index(drop=True)
        assert list(got.prompt_id) == list(want.prompt_id) and list(got.token_id) == list(want.token_id)
        assert list(got.step) == list(want.step)
        worst = max(worst, np.abs(got.entropy.to_numpy() - want.entropy.to_numpy()).max(),
                    np.abs(got.logprob.to_numpy() - want.logprob.to_numpy()).max())
        assert list(got["rank"]) == list(want["rank"])
    assert worst <= 1e-4, worst
    a0 = tokens[(tokens.model == "A") & (tokens["sample"] == 0)].set_index(["prompt_id", "step"]).entropy
    for smp, n in ((2, 3), (3, 7)):  # a prefix is scored as the start of the whole: causal attention
        cut = tokens[(tokens.model == "A") & (tokens["sample"] == smp)].set_index(["prompt_id", "step"]).entropy
        assert len(cut) == sum(min(n, len(x)) for x in g["A"].generated_token_ids)
        assert np.abs(cut.to_numpy() - a0.loc[cut.index].to_numpy()).max() <= 1e-4
    state = st.scoring_state()
    assert sorted(state["done"]) == ["A", "B"] and [x["sequences"] for x in state["groups"]] == ["A"]
    assert all(name in {p.name for p in out.iterdir()} for name in LEGACY_FILES)
    plr = pd.read_csv(st.legacy_path("prompt_level_results.csv"), dtype={"prompt_id": str})
    assert set(plr.n_samples) == {4} and len(plr) == 2 * len(rows)


def test_chat_completion_layout_scores_exactly(tiny_pair, tok, tmp_path):
    "OpenAI-compatible chat completions (messages beside the response; a request + response pair), against float64."
    import torch
    from transformers import AutoModelForCausalLM
    from reasoning_entropy.data import encode_prompt
    sys_, q1, q2 = ({"role": "system", "content": "Think step by step."}, {"role": "user", "content": "What is 3 + 4?"},
                    {"role": "user", "content": "What is 6 times 7?"})
    choice = lambda i, text, reason="stop": {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reason, "logprobs": None}
    rows = [{"id": "chatcmpl-1", "object": "chat.completion", "model": "policy", "messages": [sys_, q1],
             "choices": [choice(0, "It is 7."), choice(1, "First, we add the numbers. The answer is 7.", "length")],
             "usage": {"prompt_tokens": 20, "completion_tokens": 12}},
            {"custom_id": "q-42", "request": {"model": "policy", "messages": [q2], "n": 1},
             "response": {"id": "chatcmpl-2", "object": "chat.completion", "choices": [choice(0, "6 times 7 is 42. Answer: \\boxed{42}")]}}]
    f = write_jsonl(tmp_path / "chat.jsonl", rows)
    st = imported(f, tiny_pair, ["A", "B"], tmp_path / "out")
    assert st.imported["layout"] == "chat_completion"
    g = st.read_generations(["A"])
    assert list(zip(g.prompt_id, g["sample"])) == [("chatcmpl-1", 0), ("chatcmpl-1", 1), ("q-42", 0)]  # the response id; the client's custom_id first
    assert list(g.finished) == [True, False, True]
    assert [list(x) for x in g.prompt_token_ids] == [encode_prompt(tok, [sys_, q1])] * 2 + [encode_prompt(tok, [q2])]
    texts = [c["message"]["content"] for r in rows for c in (r.get("choices") or r["response"]["choices"])]
    assert [list(x) for x in g.generated_token_ids] == [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert list(st.read_prompts().messages.map(json.loads)) == [[sys_, q1], [q2]]
    t = st.read_tokens(["B"])
    model = AutoModelForCausalLM.from_pretrained(tiny_pair[1], dtype=torch.float64).eval()
    for r in st.read_generations(["B"]).itertuples():
        p, c = list(r.prompt_token_ids), list(r.generated_token_ids)
        with torch.no_grad(): z = model(torch.tensor([p + c])).logits[0, len(p) - 1: len(p) + len(c) - 1]
        lp = torch.log_softmax(z, -1)
        ent = -(lp.exp() * lp).sum(-1).numpy()
        sc = (-lp.mean(-1) - np.log(z.shape[-1])).numpy()  # self-certainty, KL(U || p), of the teacher-forced distribution
        mine = t[(t.prompt_id == r.prompt_id) & (t["sample"] == r.sample)]
        assert list(mine.token_id) == c and np.abs(mine.entropy.to_numpy() - ent).max() <= 1e-4
        assert np.abs(mine.self_certainty.to_numpy() - sc).max() <= 1e-4 and (mine.self_certainty > 0).all()


def test_rollout_parquet_verl_and_trl(tiny_pair, tok, tmp_path):
    "verl's generation parquet (chat prompts, a list of responses, the ground truth) and TRL's completion logs (text prompts, rewards)."
    from reasoning_entropy.data import format_prompt
    q = [[{"role": "user", "content": "What is 3 + 4?"}], [{"role": "user", "content": "What is 6 times 7?"}]]
    verl = tmp_path / "verl_gen.parquet"
    pd.DataFrame({"data_source": ["math", "math"], "prompt": q, "ability": ["math", "math"],
                  "reward_model": [{"style": "rule", "ground_truth": "7"}, {"style": "rule", "ground_truth": "42"}],
                  "responses": [["Answer: \\boxed{7}", "It is 12.", "So \\boxed{7}"], ["The answer is \\boxed{41}.", "Answer: \\boxed{42}", "hmm"]]}
                 ).to_parquet(verl)
    st = imported(verl, tiny_pair[:1], ["A"], tmp_path / "verl")
    assert st.imported["layout"] == "rollout" and st.imported["samples"] == 3
    g = st.read_generations()
    assert list(zip(g.prompt_id, g["sample"])) == [(p, s) for p in "01" for s in range(3)]
    assert list(st.read_prompts().reference_answer) == ["7", "42"]
    plr = pd.read_csv(st.legacy_path("prompt_level_results.csv"), dtype={"prompt_id": str})
    assert list(plr.n_correct) == [2, 1]  # the \boxed{} answers graded against the ground truth: 2 of 3 right, then 1 of 3
    trl = tmp_path / "completions_00010.parquet"
    prompts = [format_prompt(tok, m) for m in q]
    pd.DataFrame({"step": [10] * 4, "prompt": [prompts[0], prompts[0], prompts[1], prompts[1]],
                  "completion": ["The answer is 7.", "It is 12.", "42", "The answer is 6."], "reward": [1.0, 0.0, 1.0, 0.0],
                  "advantage": [0.5, -0.5, 0.5, -0.5]}).to_parquet(trl)
    st = imported(trl, tiny_pair[:1], ["A"], tmp_path / "trl")
    g = st.read_generations()
    assert list(g.prompt_id) == ["0", "0", "1", "1"] and list(g["sample"]) == [0, 1, 0, 1]
    assert list(g.reward) == [1.0, 0.0, 1.0, 0.0] and list(g.correct) == [True, False, True, False]
    assert [list(x) for x in g.prompt_token_ids[::2]] == [tok(p)["input_ids"] for p in prompts]  # the text as given, tokenized
    assert st.read_tokens().groupby(["prompt_id", "sample"]).size().tolist() == [len(tok(c, add_special_tokens=False)["input_ids"])
                                                                                 for c in ["The answer is 7.", "It is 12.", "42", "The answer is 6."]]


def test_conversation_layout_is_the_reference_scoring(greedy_run, tiny_pair, tmp_path):
    "The bundled sample's conversations imported as generations: the same sequences, and values, as scoring the run's references."
    from reasoning_entropy.data import sample_data_path
    from reasoning_entropy.score import score_run
    lines = sample_data_path().read_text().splitlines()[:4]
    f = tmp_path / "conv.jsonl"; f.write_text("\n".join(lines) + "\n")
    st = imported(f, tiny_pair, ["A", "B"], tmp_path / "conv")
    assert st.imported["layout"] == "conversation"
    ref_run = tmp_path / "refrun"
    import shutil; shutil.copytree(greedy_run, ref_run)
    score_run(ref_run, sequences="reference", progress=False)
    want, got = RunStore(ref_run).read_scored(), st.read_tokens()
    last = want.step == want.groupby(["model", "prompt_id"], sort=False).step.transform("max")
    assert set(want[last].token_id) == {0}  # references end with the EOS step (<|endoftext|>, id 0); imported assistant turns do not
    want = want[~last].reset_index(drop=True)
    assert list(zip(got.model, got.prompt_id, got.token_id)) == list(zip(want.model, want.prompt_id, want.token_id))
    assert np.abs(got.entropy.to_numpy() - want.entropy.to_numpy()).max() <= 1e-4


def test_round_trip_error_and_counted_skip(tiny_pair, tmp_path):
    "A completion the tokenizer changes (a decomposed accent; the tokenizer normalizes to NFC): an error, or with the flag a counted skip."
    rows = [{"prompt": "Q: name a drink.", "completion": " tea"}, {"prompt": "Q: name a drink.", "completion": " cafe\u0301"},
            {"prompt": "Q: name a fruit.", "completion": " pear"}]
    f = write_jsonl(tmp_path / "nfd.jsonl", rows)
    out = tmp_path / "out"
    r = cli("score", "--generations", f, "--model_paths", tiny_pair[0], "--output_dir", out)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"reasoning-entropy score: error: {f}:2: the completion text does not survive ckpt-1's tokenizer (decode(encode(text)) differs "
        "from character 4: 'e\u0301' became 'é'); pass --skip_untokenizable to skip such generations"]
    assert not out.exists()
    st = imported(f, tiny_pair[:1], ["A"], out, "--skip_untokenizable")
    assert list(zip(st.read_generations().prompt_id, st.read_generations()["sample"])) == [("0", 0), ("1", 0)]
    assert st.manifest["invocations"][-1]["skipped_untokenizable"] == 1


def no_outputs(out: Path) -> bool:
    st = RunStore(out)
    return not out.exists() or not (set(out.iterdir()) & ({st.tokens_dir.parent, st.manifest_path} | {st.legacy_path(f) for f in LEGACY_FILES}))


@pytest.mark.parametrize("case", ["unknown-layout", "malformed-line", "bad-field", "other-layout", "no-prompt", "duplicate-sample", "no-checkpoints",
                                  "with-run-dir", "neither", "missing-file", "context"])
def test_bad_input_one_line_status_2_nothing_written(tiny_pair, tmp_path, case):
    good = json.dumps({"prompt": "Q", "completion": " A"})
    files = {"unknown-layout": [json.dumps({"question": "Q", "text": "A", "meta": 1})],
             "malformed-line": [good, good, '{"prompt": "Q", "completion": ', good],
             "bad-field": [json.dumps({"prompt": "Q", "outputs": [{"text": " A"}]}), json.dumps({"prompt": "Q", "outputs": [{"text": " A", "token_ids": ["x"]}]})],
             "other-layout": [good, json.dumps({"prompt": "Q", "outputs": [{"text": " A"}]})],
             "no-prompt": [json.dumps({"id": "chatcmpl-9", "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}]})],
             "duplicate-sample": [json.dumps({"prompt_id": "a", "sample": 0, "prompt": "Q", "completion": " A"})] * 2,
             "context": [json.dumps({"prompt_token_ids": [5] * 520, "completion_token_ids": [6]})]}
    f = tmp_path / "g.jsonl"
    if case in files: f.write_text("\n".join(files[case]) + "\n")
    elif case != "missing-file": f.write_text(good + "\n")
    out = tmp_path / "out"
    base = ["score", "--generations", f, "--output_dir", out]
    args = {"no-checkpoints": base, "with-run-dir": base + ["--model_paths", tiny_pair[0], "--run_dir", tmp_path],
            "neither": ["score", "--output_dir", out]}.get(case, base + ["--model_paths", tiny_pair[0]])
    expect = {"unknown-layout": f"{f}: unknown generations layout (columns: meta, question, text); accepted: vllm (vLLM offline output",
              "malformed-line": f"{f}:3: not valid JSON",
              "bad-field": f"{f}:2: outputs[0].token_ids must be a list of token ids",
              "other-layout": f"{f}:2: no completion (one of completion, response, output",
              "no-prompt": f"{f}:1: no prompt for the response: put the request's messages beside it ('messages')",
              "duplicate-sample": f"{f}:2: prompt 'a' sample 0 appears twice (first at line 1)",
              "no-checkpoints": "--generations: needs --model_paths (the checkpoints that score them)",
              "with-run-dir": "--run_dir: not with --generations",
              "neither": "give --run_dir RUN (score the sequences of a run) or --generations FILE --model_paths",
              "missing-file": f"{f}: no such file",
              "context": f"{f}:1: prompt '0' sample 0: 521 tokens (prompt + completion) exceed ckpt-1's context of 512 positions"}[case]
    r = cli(*args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines[0].startswith("reasoning-entropy score: error: ") and expect in lines[0], lines[0]
    if case == "unknown-layout":
        for layout in ("vllm", "chat_completion", "rollout", "conversation"): assert f"{layout} (" in lines[0]
    assert no_outputs(out)


def test_skip_bad_lines_counts(tiny_pair, tmp_path):
    good = json.dumps({"prompt": "Q", "completion": " A"})
    f = tmp_path / "g.jsonl"; f.write_text("\n".join([good, "{oops", good]) + "\n")
    st = imported(f, tiny_pair[:1], ["A"], tmp_path / "out", "--skip_bad_lines")
    assert st.imported["skipped_rows"] == 1 and list(st.read_generations()["sample"]) == [0, 1]


def test_report_and_explorer_read_an_imported_run(greedy_run, tiny_pair, tmp_path):
    "`report --run_dir` on an imported run (nothing left to score), and the explorer's token view."
    run = RunStore(greedy_run)
    rows = [{"prompt": r.prompt_text, "prompt_token_ids": [int(x) for x in r.prompt_token_ids],
             "outputs": [{"index": i, "token_ids": [int(x) for x in r.generated_token_ids][: 10 - i], "finish_reason": "length"} for i in range(2)]}
            for r in run.read_generations(["A"]).itertuples()]
    out = tmp_path / "imp"
    st = imported(write_jsonl(tmp_path / "v.jsonl", rows), tiny_pair, ["A", "B"], out)
    scoring = st.scoring_state_path.read_text()
    r = cli("report", "--run_dir", out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert st.report_html.exists() and st.scoring_state_path.read_text() == scoring
    from reasoning_entropy.explorer import Explorer
    ex = Explorer(out)
    assert ex.n_samples == 2 and ex.all_models == ["A", "B"]
    t = ex.tokens("0", ["A", "B"], sample=1)
    assert set(t.model) == {"A", "B"} and set(t["sample"]) == {1} and len(t) == 2 * len(rows[0]["outputs"][1]["token_ids"])
