"""The rollout engine's log-probs read on import (issue 28, item 1, the parsing side): vLLM's `outputs[i].logprobs`,
chat completions' `choices[i].logprobs`, a table's per-token column; and their tokenization for one checkpoint (the count
checked against the completion's tokens, top tokens given as text mapped to ids). No checkpoint is scored here."""
import json, math
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
import pytest

from reasoning_entropy.errors import DataError, InputError
from reasoning_entropy.generations import load_generations, tokenize_generations, GENERATION_COLUMNS, TOKENIZED_COLUMNS

ENGINE = ["engine_logprobs", "engine_top_ids", "engine_top_tokens", "engine_top_logprobs", "cumulative_logprob"]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows)); return path


def error(path, **kw) -> str:
    "The message of the `DataError` that loading `path` raises."
    with pytest.raises(DataError) as e: load_generations(path, **kw)
    return str(e.value)


@pytest.fixture(scope="module")
def tok(tiny_pair):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_pair[0])


def test_columns_are_appended():
    assert GENERATION_COLUMNS[-5:] == ENGINE and GENERATION_COLUMNS[:13] == [
        "prompt_id", "sample", "prompt_index", "line", "messages", "prompt_text", "prompt_token_ids", "completion_text",
        "completion_token_ids", "finished", "reward", "correct", "reference"]
    assert TOKENIZED_COLUMNS[-3:] == ["engine_logprob", "engine_top_ids", "engine_top_logprobs"] and TOKENIZED_COLUMNS[12] == "from_ids"


def vllm_line(outputs, **kw):
    return {"request_id": "0", "prompt": "What is 2+3?", "prompt_token_ids": [11, 12, 13], "outputs": outputs, **kw}


def test_vllm_string_keys_dict_values(tmp_path):
    "JSON's string keys and `Logprob` objects: the sampled token's entry found (in the top or not), all entries ranked."
    pos = [{"25": {"logprob": -1.5, "rank": 3, "decoded_token": " 5"}, "3": {"logprob": -0.01, "rank": 1, "decoded_token": "!"},
            "4": {"logprob": -0.9, "rank": 2, "decoded_token": "?"}},
           {"0": {"logprob": -0.25, "rank": 1, "decoded_token": "<|endoftext|>"}}]
    f = write_jsonl(tmp_path / "v.jsonl", [vllm_line([{"index": 0, "text": " 5", "token_ids": [25, 0], "cumulative_logprob": -1.75,
                                                       "logprobs": pos, "finish_reason": "stop"}])])
    g = load_generations(f)
    r = g.frame.iloc[0]
    assert r.engine_logprobs == [-1.5, -0.25] and r.cumulative_logprob == -1.75
    assert r.engine_top_ids == [[3, 4, 25], [0]] and r.engine_top_logprobs == [[-0.01, -0.9, -1.5], [-0.25]]
    assert r.engine_top_tokens is None
    assert g.summary()["with_engine_logprobs"] == 1 and g.summary()["with_engine_top"] == 1


def test_vllm_int_keys_bare_numbers_and_parquet_maps(tmp_path):
    "Integer keys (a Parquet map of int64 -> double, read back as pairs) and bare numbers."
    out = pa.struct([("index", pa.int64()), ("token_ids", pa.list_(pa.int64())), ("logprobs", pa.list_(pa.map_(pa.int64(), pa.float64())))])
    t = pa.table({"prompt": ["Q"], "outputs": pa.array([[{"index": 0, "token_ids": [5, 0], "logprobs": [[(7, -0.01), (5, -4.0)], [(0, -0.2)]]}]],
                                                       type=pa.list_(out))})
    pq.write_table(t, tmp_path / "v.parquet")
    r = load_generations(tmp_path / "v.parquet").frame.iloc[0]
    assert (r.engine_logprobs, r.engine_top_ids, r.engine_top_logprobs) == ([-4.0, -0.2], [[7, 5], [0]], [[-0.01, -4.0], [-0.2]])
    assert np.isnan(r.cumulative_logprob)
    f = write_jsonl(tmp_path / "bare.jsonl", [vllm_line([{"token_ids": [5], "logprobs": [{"5": -0.5, "6": -1.0}]}])])
    assert load_generations(f).frame.engine_top_ids[0] == [[5, 6]]


def test_vllm_without_token_ids_needs_one_entry_per_position(tmp_path):
    one = write_jsonl(tmp_path / "one.jsonl", [vllm_line([{"text": " 5", "logprobs": [{"25": -0.3}]}])])
    g = load_generations(one)
    assert g.frame.engine_logprobs[0] == [-0.3] and g.frame.completion_token_ids[0] is None
    two = write_jsonl(tmp_path / "two.jsonl", [vllm_line([{"text": " 5", "logprobs": [{"25": -0.3}]}]),
                                               vllm_line([{"text": " 5", "logprobs": [{"25": -0.3, "3": -2.0}]}, {"text": "x"}], request_id="1")])
    assert error(two) == f"{two}:2: outputs[0].logprobs[0] has 2 entries and no token_ids say which token was sampled"


def test_vllm_null_logprobs_is_none(tmp_path):
    f = write_jsonl(tmp_path / "n.jsonl", [vllm_line([{"index": 0, "text": " 5", "token_ids": [25], "logprobs": None, "cumulative_logprob": None}])])
    g = load_generations(f)
    r = g.frame.iloc[0]
    assert r.engine_logprobs is None and r.engine_top_ids is None and r.engine_top_logprobs is None and np.isnan(r.cumulative_logprob)
    assert g.summary()["with_engine_logprobs"] == 0 and g.summary()["with_engine_top"] == 0


def test_vllm_refusals_name_the_line(tmp_path):
    good = vllm_line([{"token_ids": [5], "logprobs": [{"5": -0.5}]}])
    cases = {"count": ([{"token_ids": [5, 6], "logprobs": [{"5": -0.5}]}], "outputs[0].logprobs has 1 positions for 2 token_ids"),
             "missing": ([{"index": 0, "token_ids": [5]}, {"index": 1, "token_ids": [6], "logprobs": [{"5": -0.5}]}],
                         "outputs[1].logprobs[0] has no entry for the sampled token 6"),
             "positive": ([{"token_ids": [5], "logprobs": [{"5": {"logprob": 0.01}}]}],
                          "outputs[0].logprobs[0][5] must be a log-probability (a finite number ≤ 0), got 0.01"),
             "nan": ([{"token_ids": [5], "logprobs": [{"5": -0.1, "6": float("nan")}]}],
                     "outputs[0].logprobs[0][6] must be a log-probability (a finite number ≤ 0), got nan"),
             "cumulative": ([{"token_ids": [5], "cumulative_logprob": 2.0, "logprobs": None}],
                            "outputs[0].cumulative_logprob must be a log-probability (a finite number ≤ 0), got 2.0"),
             "not-a-list": ([{"token_ids": [5], "logprobs": {"5": -0.5}}], "outputs[0].logprobs must be a list (one entry per generated token) or null")}
    for name, (outs, msg) in cases.items():
        f = write_jsonl(tmp_path / f"{name}.jsonl", [good, vllm_line(outs, prompt="Another?")])
        assert error(f) == f"{f}:2: {msg}", name
        g = load_generations(f, skip_bad=True)
        assert g.skipped == 1 and len(g.frame) == 1


def test_values_just_above_zero_are_float_error(tmp_path):
    f = write_jsonl(tmp_path / "z.jsonl", [{"prompt": "Q", "completion": "A", "logprobs": [1e-7, 0, -3]}])
    assert load_generations(f).frame.engine_logprobs[0] == [1e-7, 0.0, -3.0]
    bad = write_jsonl(tmp_path / "b.jsonl", [{"prompt": "Q", "completion": "A", "logprobs": [-1, 2e-6]}])
    assert error(bad) == f"{bad}:1: logprobs[1] must be a log-probability (a finite number ≤ 0), got 2e-06"


def chat(choices, **kw):
    return {"id": "chatcmpl-1", "object": "chat.completion", "messages": [{"role": "user", "content": "What is 2+3?"}], "choices": choices, **kw}


def entry(tok, lp, top=()):
    return {"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": [{"token": t, "logprob": x, "bytes": None} for t, x in top]}


def test_chat_completion_tokens_as_text_and_as_ids(tmp_path):
    text = {"index": 0, "message": {"role": "assistant", "content": "5."}, "finish_reason": "stop",
            "logprobs": {"content": [entry("5", -0.1, [("Five", -2.5), ("5", -0.1)]), entry(".", -0.4, [(".", -0.4), ("!", -math.inf)])]}}
    ids = {"index": 1, "message": {"role": "assistant", "content": "5."}, "finish_reason": "stop",
           "logprobs": {"content": [entry("token_id:20", -0.1, [("token_id:20", -0.1), ("token_id:31", -2.5)]), entry("token_id:0", -0.4, [("token_id:0", -0.4)])]}}
    none = {"index": 2, "message": {"role": "assistant", "content": "5"}, "logprobs": None}
    f = write_jsonl(tmp_path / "c.jsonl", [chat([text, ids, none])])
    fr = load_generations(f).frame
    assert fr.engine_logprobs[0] == [-0.1, -0.4] and fr.engine_top_tokens[0] == [["5", "Five"], ["."]]  # -inf: probability 0, left out
    assert fr.engine_top_logprobs[0] == [[-0.1, -2.5], [-0.4]] and fr.engine_top_ids[0] is None and fr.completion_token_ids[0] is None
    assert fr.engine_top_ids[1] == [[20, 31], [0]] and fr.engine_top_tokens[1] is None and fr.completion_token_ids[1] == [20, 0]
    assert fr.engine_logprobs[2] is None and fr.engine_top_tokens[2] is None


def test_chat_completion_refusals_and_legacy_completions(tmp_path):
    bad = {"index": 0, "message": {"content": "5"}, "logprobs": {"content": [entry("5", 0.5)]}}
    f = write_jsonl(tmp_path / "bad.jsonl", [chat([bad])])
    assert error(f) == f"{f}:1: choices[0].logprobs.content[0].logprob must be a log-probability (a finite number ≤ 0), got 0.5"
    legacy = {"index": 0, "text": " 5.", "logprobs": {"tokens": [" 5", "."], "token_logprobs": [-0.3, -0.6],
                                                     "top_logprobs": [{" 5": -0.3, " 6": -1.4}, {".": -0.6}], "text_offset": [0, 2]}}
    g = load_generations(write_jsonl(tmp_path / "legacy.jsonl", [chat([legacy])]))
    assert g.frame.engine_logprobs[0] == [-0.3, -0.6] and g.frame.engine_top_tokens[0] == [[" 5", " 6"], ["."]]


def test_rollout_column_list_of_lists_and_override(tmp_path):
    "verl's `responses` with one list of log-probs per sample; the column named explicitly; the count of lists checked."
    p = tmp_path / "verl.parquet"
    pd.DataFrame({"prompt": [[{"role": "user", "content": "Q1"}], [{"role": "user", "content": "Q2"}]],
                  "responses": [["a", "bc"], ["d", "e"]],
                  "rollout_log_probs": [[[-0.5], [-0.25, -1.0]], [[-0.1], [-0.2]]],
                  "behaviour": [[[-0.4], [-0.2, -0.9]], [[-0.3], [-0.6]]]}).to_parquet(p)
    assert list(load_generations(p).frame.engine_logprobs) == [[-0.5], [-0.25, -1.0], [-0.1], [-0.2]]
    assert list(load_generations(p, engine_logprobs_column="behaviour").frame.engine_logprobs) == [[-0.4], [-0.2, -0.9], [-0.3], [-0.6]]
    assert error(p, engine_logprobs_column="lp") == f"{p}:1: no lp (the engine log-probs column named by --engine_logprobs_column)"
    f = write_jsonl(tmp_path / "n.jsonl", [{"prompt": "Q", "responses": ["a", "b", "c"], "old_log_probs": [[-0.1], [-0.2]]}])
    assert error(f) == f"{f}:1: old_log_probs has 2 lists of log-probs for 3 completions"
    f = write_jsonl(tmp_path / "none.jsonl", [{"prompt": "Q", "completion": "a", "old_log_probs": [-0.1, None]}])
    assert error(f) == f"{f}:1: old_log_probs[1] must be a log-probability (a finite number ≤ 0), got None"
    f = write_jsonl(tmp_path / "first.jsonl", [{"prompt": "Q", "completion": "a", "old_log_probs": [-0.1], "logprobs": [-0.9]}])
    assert load_generations(f).frame.engine_logprobs[0] == [-0.1]  # rollout_log_probs, old_log_probs, logprobs: the first present


def test_tokenize_keeps_them_with_their_tokens(tok, tmp_path):
    "A vLLM line with the tokenizer's own ids keeps its values; chat top tokens as text become ids (-1: no single token)."
    cids = tok(" Hi there", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    lps = [{str(t): -0.5, "3": -0.01} for t in cids]
    f = write_jsonl(tmp_path / "v.jsonl", [vllm_line([{"text": " Hi there", "token_ids": cids, "logprobs": lps}], prompt="Q", prompt_token_ids=None)])
    tg, skipped = tokenize_generations(load_generations(f), tok, "A")
    assert skipped == [] and tg.engine_logprob[0] == [-0.5] * len(cids) and tg.engine_top_ids[0] == [[3, t] for t in cids]
    assert tg.engine_top_logprobs[0] == [[-0.01, -0.5]] * len(cids)
    content = [entry(s, -0.5, [(s, -0.5), (" the", -1.0), ("\ufffd", -2.0)]) for s in ("H", "i")]
    f = write_jsonl(tmp_path / "c.jsonl", [chat([{"message": {"content": "Hi"}, "logprobs": {"content": content}}])])
    tc, _ = tokenize_generations(load_generations(f), tok, "A")
    h, i = tok("Hi", add_special_tokens=False)["input_ids"]
    assert tc.engine_top_ids[0] == [[h, 285, -1], [i, 285, -1]] and tc.engine_logprob[0] == [-0.5, -0.5]


def test_tokenize_count_mismatch_refused_or_skipped(tok, tmp_path):
    rows = [{"prompt": "Q", "completion": " the", "logprobs": [-0.5]}, {"prompt": "Q", "completion": "Hi", "logprobs": [-0.5]},
            {"prompt": "R", "completion": "Hi", "logprobs": [-0.5, -0.1]}]
    f = write_jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(DataError) as e: tokenize_generations(load_generations(f), tok, "A")
    assert str(e.value) == f"{f}:2: engine log-probs: 1 values for 2 completion tokens of A's tokenizer" and isinstance(e.value, InputError)
    tg, skipped = tokenize_generations(load_generations(f), tok, "A", skip_untokenizable=True)
    assert skipped == [(2, "0", 1)] and list(tg.engine_logprob) == [[-0.5], [-0.5, -0.1]] and list(tg.line) == [1, 3]
