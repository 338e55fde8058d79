"The embedded demo: bundled sample data, the cached demo checkpoint series, its tokenizer and its reload."
import json, logging, os, subprocess, sys, time
from pathlib import Path
import pytest
import reasoning_entropy.demo as demo
from reasoning_entropy.data import load_prompts, sample_data_path

from conftest import REDUCED_DEMO as TINY  # a reduced build: same code path as the real one, fewer and smaller steps


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    "Build the reduced series once through `demo_series`, recording the rows it trained on."
    cache = tmp_path_factory.mktemp("demo-cache")
    seen = []
    real = demo.make_conversations
    def spy(*a, **kw):
        rows = real(*a, **kw); seen.append(rows); return rows
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo, "make_conversations", spy)
        series = demo.demo_series(cache, progress=False, **TINY)
    return cache, series, seen


def test_series_layout(built):
    cache, series, _ = built
    assert [n for n, _ in series] == ["Checkpoint_1", "Checkpoint_2", "Checkpoint_4", "Checkpoint_10"]
    root = cache / f"demo-{demo.demo_build_hash(**TINY)}"
    assert [p for _, p in series] == [root / f"demo-checkpoint-{k}-of-10" for k in (1, 2, 4, 10)]
    info = json.loads((root / "demo_build.json").read_text())
    assert info["steps"] == 60 and info["batch_size"] == 16
    # it learned something: the loss at 10/10 is well below the loss at 1/10
    losses = info["loss_at_checkpoint"]
    assert losses["10"] < 0.8 * losses["1"], losses
    # the checkpoints differ from each other
    sizes = {p.joinpath("model.safetensors").read_bytes()[-4096:] for _, p in series}
    assert len(sizes) == 4
    assert sorted(x.name for x in cache.iterdir()) == [root.name, root.name + ".lock"]


def test_train_eval_disjoint(built):
    _, _, seen = built
    train = [r for rows in seen for r in rows if len(rows) == TINY["steps"] * TINY["batch_size"]]
    assert len(train) == 60 * 16
    sample = {demo.problem_key(json.loads(l)) for l in sample_data_path().read_text().splitlines()}
    assert len(sample) == demo.SAMPLE_SIZE
    assert not sample & {demo.problem_key(r) for r in train}
    # the default-size training stream is disjoint too
    full = demo.make_conversations(600 * 32, demo.TRAIN_SEED, exclude=sample)
    assert not sample & {demo.problem_key(r) for r in full}


_RELOAD = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from reasoning_entropy.data import load_prompts, encode_prompt
out = []
prompts = load_prompts(num_examples=3)
for path in sys.argv[1:]:
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = encode_prompt(tok, prompts[0].messages)
    with torch.no_grad():
        g = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    out.append(dict(tok=type(tok).__name__, model=type(model).__name__, model_type=model.config.model_type,
                    eos=tok.eos_token, pad=tok.pad_token, eos_id=tok.eos_token_id,
                    gen_eos=model.generation_config.eos_token_id, gen_pad=model.generation_config.pad_token_id,
                    prompt=tok.decode(ids), n_new=g.shape[1] - len(ids),
                    roundtrip=all(tok.decode(tok.encode(t)) == t for p in prompts
                                  for t in [tok.apply_chat_template(p.messages, tokenize=False)])))
print(json.dumps(out))
"""

def test_reload_in_fresh_process(built):
    _, series, _ = built
    r = subprocess.run([sys.executable, "-c", _RELOAD, *[str(p) for _, p in series]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(got) == 4
    user = load_prompts(num_examples=1)[0].messages[1]["content"]
    for g in got:
        assert (g["tok"], g["model"], g["model_type"]) == ("Qwen2Tokenizer", "Qwen2ForCausalLM", "qwen2")
        assert (g["eos"], g["pad"]) == ("<|im_end|>", "<|endoftext|>")
        assert g["gen_eos"] == g["eos_id"] == 2 and g["gen_pad"] == 0
        assert g["prompt"] == (f"<|im_start|>system\n{demo.SYSTEM_PROMPT}<|im_end|>\n"
                               f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
        assert 1 <= g["n_new"] <= 8 and g["roundtrip"]


_IDS = r"""
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
texts = json.loads(open(sys.argv[2]).read())
print(json.dumps(dict(cls=type(tok).__name__, ids=[tok.encode(t) for t in texts],
                      back=[tok.decode(tok.encode(t)) == t for t in texts])))
"""

def test_tokenizer_round_trip(tmp_path):
    "The BPE we train and the Qwen2Tokenizer that AutoTokenizer rebuilds from disk give the same ids."
    from transformers import Qwen2Config
    rows = demo.make_conversations(500, demo.TRAIN_SEED)
    bpe = demo.train_bpe([m["content"] for r in rows for m in r["conversations"]], 400)
    tok = demo.qwen2_tokenizer(bpe)
    tok.save_pretrained(tmp_path); Qwen2Config(vocab_size=len(tok)).save_pretrained(tmp_path)
    sample = [json.loads(l) for l in sample_data_path().read_text().splitlines()]
    texts = [tok.apply_chat_template(r["conversations"], tokenize=False) for r in sample]
    texts += ["naïve café ½ 12+34 \n\n  x", "Ünïcödé e\u0301"]  # non-ASCII, NFC-normalized text
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    r = subprocess.run([sys.executable, "-c", _IDS, str(tmp_path), str(tmp_path / "texts.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["cls"] == "Qwen2Tokenizer"
    assert got["ids"] == [bpe.encode(t).ids for t in texts]
    assert all(got["back"][:-1])  # the last text is not NFC, so it decodes to its normalized form


def test_cache_reused(built, caplog):
    cache, series, _ = built
    stamp = series[-1][1].joinpath("model.safetensors").stat().st_mtime_ns
    t = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="reasoning_entropy.demo"):
        again = demo.demo_series(cache, **TINY)
    assert time.perf_counter() - t < 2
    assert again == series
    assert series[-1][1].joinpath("model.safetensors").stat().st_mtime_ns == stamp
    assert "using cached demo series" in caplog.text and "building" not in caplog.text


def test_killed_build_leaves_no_cache(tmp_path, monkeypatch):
    "A build interrupted mid-way leaves neither a series nor its temporary directory."
    def dies(out_dir, **kw):
        Path(out_dir, "demo-checkpoint-1-of-10").mkdir()
        Path(out_dir, "demo-checkpoint-1-of-10", "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(demo, "train_demo_series", dies)
    with pytest.raises(KeyboardInterrupt): demo.demo_series(tmp_path, steps=10)
    assert [p.name for p in tmp_path.iterdir()] == [f"demo-{demo.demo_build_hash(steps=10)}.lock"]
    assert not demo._complete(tmp_path / f"demo-{demo.demo_build_hash(steps=10)}")


def test_sample_data_reproducible(tmp_path):
    shipped = sample_data_path().read_bytes()
    assert demo.write_sample_data(tmp_path / "s.jsonl").read_bytes() == shipped
    prompts = load_prompts()
    assert len(prompts) == demo.SAMPLE_SIZE == 300
    for p in prompts:
        a, b = (int(x) for x in __import__("re").findall(r"\d+", p.messages[1]["content"]))
        assert p.reference_answer == str(a + b)
        assert p.messages[0] == {"role": "system", "content": demo.SYSTEM_PROMPT}
        assert p.reference.startswith("<think>\n") and "</think>\n\nAnswer: \\boxed{" in p.reference
