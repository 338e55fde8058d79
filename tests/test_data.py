"End-to-end tests of the data loader: every malformed-input case by its message, formats, streaming."
import json, builtins
import pandas as pd
import pytest
from reasoning_entropy import data as D
from reasoning_entropy.data import load_prompts, format_prompt, encode_prompt, fallback_format
from reasoning_entropy.errors import DataError, InputError

SYS = {"role": "system", "content": "Think step by step."}
USER = {"role": "user", "content": "What is 12 + 30?"}
ASST = {"role": "assistant", "content": "<think>12+30=42</think>\n\nAnswer: \\boxed{42}"}
GOOD = json.dumps({"conversations": [SYS, USER, ASST]})


def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("line, message", [
    ('{"conversations": [', "not valid JSON"),
    ('[1, 2]', "expected a JSON object, got list"),
    ('{"text": "hello"}', "no 'conversations' (or 'messages') field"),
    ('{"conversations": []}', "'conversations' must be a non-empty list of messages"),
    (json.dumps({"conversations": [SYS, ASST]}), "no user message before the first assistant turn"),
    (json.dumps({"conversations": [SYS, {"role": "robot", "content": "x"}]}), "message 1 has unknown role 'robot'"),
    (json.dumps({"conversations": [{"role": "user", "content": ["a"]}]}), "message 0 (user) has non-string content (list)"),
    (json.dumps({"conversations": ["just text"]}), "message 0 is not an object"),
])
def test_malformed_line_named_by_number(tmp_path, line, message):
    p = write(tmp_path, "d.jsonl", [GOOD, GOOD, line, GOOD])
    with pytest.raises(DataError) as e: load_prompts(p)
    assert str(e.value) == f"{p}:3: {message}" or str(e.value).startswith(f"{p}:3: {message}")
    assert isinstance(e.value, InputError)
    # skipping instead: the bad row is counted, ids of the others are unchanged
    st = D.ReadStats()
    recs = load_prompts(p, skip_bad=True, stats=st)
    assert [r.prompt_id for r in recs] == ["0", "1", "3"]
    assert (st.rows, st.skipped) == (3, 1)


def test_file_level_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"; empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.jsonl: empty file$"): load_prompts(empty)
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file$"): load_prompts(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="is a directory"): load_prompts(tmp_path)
    blank = write(tmp_path, "blank.jsonl", ["", "  "])
    with pytest.raises(DataError, match="no conversations in file"): load_prompts(blank)
    allbad = write(tmp_path, "allbad.jsonl", ["{", "{"])
    with pytest.raises(DataError, match=r"no conversations in file \(2 malformed rows skipped\)"): load_prompts(allbad, skip_bad=True)
    with pytest.raises(InputError, match="--num_examples: must be a positive integer, got -1"): load_prompts(write(tmp_path, "g.jsonl", [GOOD]), num_examples=-1)


def test_variants_json_parquet_messages_ids(tmp_path):
    rows = [{"id": "a", "messages": [USER, ASST]}, {"conversations": [SYS, USER]}]
    pj = tmp_path / "d.json"; pj.write_text(json.dumps(rows))
    recs = load_prompts(pj)
    assert [r.prompt_id for r in recs] == ["a", "1"]
    assert [r.reference_answer for r in recs] == ["42", None]
    pq = tmp_path / "d.parquet"; pd.DataFrame([{"conversations": [SYS, USER, ASST]}] * 3).to_parquet(pq)
    recs = load_prompts(pq, num_examples=2)
    assert [(r.prompt_id, r.messages[1]["content"], r.reference_answer) for r in recs] == [("0", USER["content"], "42"), ("1", USER["content"], "42")]
    bad = tmp_path / "bad.json"; bad.write_text('[{"conversations": [{"role": "user", "content": 1}]}]')
    with pytest.raises(DataError, match=r"bad\.json:1: message 0 \(user\) has non-string content"): load_prompts(bad)


def test_first_n_is_streamed(tmp_path, monkeypatch):
    "Taking the first N rows of a 1 GB file reads a few KB, not the file."
    p = tmp_path / "big.jsonl"
    with open(p, "w") as f:
        for _ in range(5): f.write(GOOD + "\n")
        f.write("x" * 100 + "\n")
        f.truncate(1 << 30)  # sparse: 1 GiB of data after the good rows
    class Counting:
        "A file that counts the bytes handed out."
        def __init__(self, f): self.f, self.n = f, 0
        def __enter__(self): return self
        def __exit__(self, *a): self.f.close()
        def __iter__(self):
            for line in self.f: self.n += len(line); yield line
        def read(self, *a): b = self.f.read(*a); self.n += len(b); return b
        def readline(self, *a): b = self.f.readline(*a); self.n += len(b); return b
    handles = []
    real_open = builtins.open
    def spy(*a, **k):
        h = Counting(real_open(*a, **k)); handles.append(h); return h
    monkeypatch.setattr(D, "open", spy, raising=False)
    recs = load_prompts(p, num_examples=5)
    assert len(recs) == 5
    assert len(handles) == 1 and handles[0].f.closed
    assert handles[0].n == 5 * (len(GOOD) + 1)  # exactly the five rows, not one byte more
    assert p.stat().st_size == 1 << 30


def test_chat_template_and_fallback(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    words = ["<|im_start|>", "<|im_end|>", "<unk>", "<s>", "system", "user", "assistant", "System:", "User:", "Assistant:"]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    from tokenizers.processors import TemplateProcessing
    tk.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="<|im_end|>",
                                  additional_special_tokens=["<|im_start|>"])
    msgs = [SYS, USER]
    # no chat template: the documented fallback, encoded with the tokenizer's own specials (one BOS)
    assert format_prompt(tok, msgs) == "System: Think step by step.\n\nUser: What is 12 + 30?\n\nAssistant:"
    assert format_prompt(tok, msgs) == fallback_format(msgs)
    ids = encode_prompt(tok, msgs)
    assert ids[0] == 3 and ids.count(3) == 1 and ids[1] == 7 and ids[-1] == 9
    # a chat template that writes its own BOS: encoded without adding a second one
    tok.chat_template = ("<s>{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    text = format_prompt(tok, msgs)
    assert text.endswith("<|im_start|>assistant\n") and text.startswith("<s><|im_start|>system\n")
    ids = encode_prompt(tok, msgs)
    assert ids.count(3) == 1 and ids[:3] == [3, 0, 4] and ids[-2:] == [0, 6]
