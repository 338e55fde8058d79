"""The embedded demo in fresh processes: the reduced checkpoint series and its tokenizer reload from disk as any user loads them.
(The unit examples of the demo are in nbs/10_demo.ipynb.)"""
import json, subprocess, sys
import reasoning_entropy.demo as demo
from reasoning_entropy.data import load_prompts, sample_data_path


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

def test_reload_in_fresh_process(demo_checkpoints):
    r = subprocess.run([sys.executable, "-c", _RELOAD, *[str(p) for p in demo_checkpoints]],
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


def _weights_hash(path) -> str:
    import hashlib
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_build_is_deterministic_and_records_real_steps(tmp_path):
    "Two builds with the same (reduced) settings, one on one thread and one on two, give bit-identical checkpoints; each checkpoint's step is the step it was saved at."
    import torch
    from reasoning_entropy.checkpoints import resolve_checkpoints
    small = dict(steps=30, batch_size=8, hidden_size=32, num_layers=1, window=5, tol=0.02, warmup=5, cool_steps=5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = demo.train_demo_series(tmp_path / "a", progress=False, **small)
        torch.set_num_threads(2)
        b = demo.train_demo_series(tmp_path / "b", progress=False, **small)
    finally: torch.set_num_threads(threads)
    assert [_weights_hash(p) for _, p in a] == [_weights_hash(p) for _, p in b]
    assert len({_weights_hash(p) for _, p in a}) == 4
    info = json.loads((tmp_path / "a" / "demo_build.json").read_text())
    n = info["steps_trained"]
    assert n == 30 or n == info["converged_at"] + 5, info
    steps = [c.step for c in resolve_checkpoints([p for _, p in a])]
    assert steps == [int(s) for s in info["checkpoint_steps"].values()] == demo._series_steps(n, info["every"])
    assert steps[-1] == n and steps[0] < steps[1] < steps[2] < n
