"""Where researchers' data already is: a question-and-answer set saved with `datasets` (GSM8K's columns) as `--data_path`, a
`datasets.Dataset` from Python, named columns; and the user's own prompt ids kept on import (vLLM `request_id`, OpenAI `id`,
a rollout's `uid`)."""
import json
import pytest

from reasoning_entropy.store import RunStore
from helpers import cli

datasets = pytest.importorskip("datasets")

GSM = {"question": ["Ann has 2 pens and gets 5 more. How many pens does she have?", "What is 6 times 7?", "What is 10 minus 4?"],
       "answer": ["She has 2 + 5 = <<2+5=7>>7 pens.\n#### 7", "6 * 7 = <<6*7=42>>42\n#### 42", "10 - 4 = 6\n#### 6"]}


def test_a_datasets_folder_is_data(tiny_pair, tmp_path):
    """`compare --data_path FOLDER` on a GSM8K-style set saved with `save_to_disk`: the questions are the prompts, the numbers
    after `####` the reference answers; the same set from Python as a `datasets.Dataset` gives the same prompts; other column
    names are given with --prompt_column / --answer_column; a DatasetDict folder is refused with its splits."""
    from reasoning_entropy.compare import compare
    a = tiny_pair[0]
    ds = datasets.Dataset.from_dict(GSM)
    ds.save_to_disk(str(tmp_path / "gsm8k-test"))
    cli("compare", "--model_paths", a, "--data_path", tmp_path / "gsm8k-test", "--max_new_tokens", 4, "--output_dir", tmp_path / "run", check=True)
    pr = RunStore(tmp_path / "run").read_prompts()
    assert list(pr.reference_answer) == ["7", "42", "6"] and list(pr.prompt_id) == ["0", "1", "2"]
    assert [json.loads(m)[0]["content"] for m in pr.messages] == GSM["question"]
    assert RunStore(tmp_path / "run").invocations[-1]["data_path"] == str((tmp_path / "gsm8k-test").resolve())
    py = compare(a, data_path=ds, max_new_tokens=4, output_dir=tmp_path / "py")
    pp = RunStore(py).read_prompts()
    assert list(pp.reference_answer) == list(pr.reference_answer) and list(pp.messages) == list(pr.messages)
    assert RunStore(py).invocations[-1]["data_path"].startswith("datasets.Dataset (in memory")
    renamed = datasets.Dataset.from_dict({"q": GSM["question"][:2], "gold": ["7", "42"]})
    renamed.save_to_disk(str(tmp_path / "renamed"))
    cli("compare", "--model_paths", a, "--data_path", tmp_path / "renamed", "--prompt_column", "q", "--answer_column", "gold",
        "--max_new_tokens", 4, "--output_dir", tmp_path / "run2", check=True)
    assert list(RunStore(tmp_path / "run2").read_prompts().reference_answer) == ["7", "42"]
    r = cli("compare", "--model_paths", a, "--data_path", tmp_path / "renamed", "--prompt_column", "question", "--output_dir", tmp_path / "bad")
    assert r.returncode == 2 and r.stderr.strip().endswith(f"{tmp_path / 'renamed'}:1: no 'question' column (--prompt_column)"), r.stderr
    assert not (tmp_path / "bad").exists()
    datasets.DatasetDict(test=ds).save_to_disk(str(tmp_path / "gsm8k"))
    r = cli("compare", "--model_paths", a, "--data_path", tmp_path / "gsm8k", "--output_dir", tmp_path / "bad")
    assert r.returncode == 2 and "is a DatasetDict: give one split's folder" in r.stderr.strip().splitlines()[-1], r.stderr


def test_import_keeps_the_users_ids(tiny_pair, tmp_path):
    "vLLM's `request_id`, a chat completion's `id` and a rollout's `uid` become the prompt ids; the samples of one id are one prompt's."
    a = tiny_pair[0]
    vllm = [{"request_id": rid, "prompt": q, "outputs": [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate([" 7", " 8"])]}
            for rid, q in (("gsm8k-17", "What is 3+4?"), ("gsm8k-3", "What is 6+2?"))]
    chat = [{"id": "chatcmpl-9a", "messages": [{"role": "user", "content": "What is 3+4?"}],
             "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"} for i, t in enumerate([" 7", " 8"])]}]
    roll = [{"uid": "u-1", "prompt": "What is 3+4?", "response": t} for t in (" 7", " 8", " 9")] + [{"uid": "u-2", "prompt": "What is 5+5?", "response": " 10"}]
    for name, rows, ids, samples in (("vllm", vllm, ["gsm8k-17", "gsm8k-3"], [2, 2]), ("chat", chat, ["chatcmpl-9a"], [2]),
                                     ("rollout", roll, ["u-1", "u-2"], [3, 1])):
        f = tmp_path / f"{name}.jsonl"
        f.write_text("".join(json.dumps(r) + "\n" for r in rows))
        cli("score", "--generations", f, "--model_paths", a, "--output_dir", tmp_path / name, check=True)
        st = RunStore(tmp_path / name)
        assert list(st.read_prompts().prompt_id) == ids, name
        g = st.read_generations()
        assert [int((g.prompt_id == i).sum()) for i in ids] == samples, name
        assert set(st.read_tokens().prompt_id) == set(ids)
