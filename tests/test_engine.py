"End-to-end tests of the engine on tiny random checkpoints of six architectures."
import math, time
import numpy as np, pandas as pd, pytest, torch
from reasoning_entropy.testing import ARCHS, make_tiny_checkpoint
from reasoning_entropy.checkpoints import Checkpoint, CheckpointError, check_shared_vocabulary, load_checkpoint, loaded
from reasoning_entropy.errors import InputError
from reasoning_entropy.engine import DecodingConfig, PromptInput, generate, score
from reasoning_entropy.store import TOKENS_COLUMNS, GENERATIONS_COLUMNS
from reasoning_entropy.metrics import token_metrics, distribution_entropy
from reasoning_entropy.testing import reference_metrics

QUESTIONS = ['What is 3 + 4?', 'Let me think step by step about this problem, then add.', 'Hi',
             'So the total is 15 apples and 3 pears. How many fruits?', 'Answer: 12', 'wait']

@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp('ckpts')
    return {a: make_tiny_checkpoint(d/a, a) for a in ARCHS}

def prompts_for(tok, qs=QUESTIONS):
    out = []
    for i, q in enumerate(qs):
        text = tok.apply_chat_template([{'role': 'user', 'content': q}], add_generation_prompt=True, tokenize=False)
        out.append(PromptInput(f'p{i}', text, tok(text)['input_ids']))
    return out

def run(model, tok, ps, d, **kw):
    t, g = map(pd.concat, zip(*generate(model, tok, ps, d, progress=False, **kw)))
    return t.reset_index(drop=True), g.set_index('prompt_id')

def explain_divergence(a, b, pid):
    "Near-tie check at the first differing step of two greedy runs of prompt `pid`; returns the top-2 gap."
    ta, tb = a[a.prompt_id == pid].reset_index(drop=True), b[b.prompt_id == pid].reset_index(drop=True)
    n = min(len(ta), len(tb))
    diff = np.nonzero(ta.token_id.values[:n] != tb.token_id.values[:n])[0]
    i = diff[0] if len(diff) else n
    gaps = [r.top_logprobs[0] - r.top_logprobs[1] for r in (ta.iloc[i], tb.iloc[i])]
    return min(gaps)

@pytest.mark.parametrize('arch', ARCHS)
def test_architectures_batched_equals_single_and_scoring(ckpts, arch):
    model, tok = load_checkpoint(Checkpoint(arch, ckpts[arch]), device='cpu', dtype='float32')
    ps = prompts_for(tok)
    d = DecodingConfig(max_new_tokens=12)
    tb, gb = run(model, tok, ps, d, batch_size=4)
    assert list(tb.columns) == TOKENS_COLUMNS and list(gb.reset_index().columns) == [c for c in GENERATIONS_COLUMNS if c != 'prompt_index']
    assert sorted(gb.index) == sorted(p.prompt_id for p in ps)
    singles = [run(model, tok, [p], d, batch_size=1) for p in ps]
    ts = pd.concat([s[0] for s in singles]).reset_index(drop=True)
    for p, (_, g1) in zip(ps, singles):
        a, b = gb.generated_token_ids[p.prompt_id], g1.generated_token_ids[p.prompt_id]
        if a != b:  # allowed only at a float32 near-tie of the top two logits
            gap = explain_divergence(tb, ts, p.prompt_id)
            assert gap < 1e-4, f'{arch} {p.prompt_id}: batched {a} != single {b} with top-2 gap {gap}'
    # batched and single metrics agree where the tokens agree
    m = tb.merge(ts, on=['prompt_id', 'step', 'token_id'], suffixes=('', '_1'))
    assert len(m) > 0.9 * len(tb)
    assert (m.entropy - m.entropy_1).abs().max() < 1e-4
    # teacher-forced scoring of the greedy generation reproduces generation-time metrics
    sdf = pd.concat(score(model, tok, [(pid, r.prompt_token_ids, r.generated_token_ids) for pid, r in gb.iterrows()],
                          progress=False, batch_size=3, chunk_positions=5))
    mg = tb.merge(sdf, on=['prompt_id', 'step'], suffixes=('', '_s'))
    assert len(mg) == len(tb) and (mg.token_id == mg.token_id_s).all()
    assert (mg.entropy - mg.entropy_s).abs().max() <= 1e-4
    assert (mg.logprob - mg.logprob_s).abs().max() <= 1e-4
    assert (mg.varentropy - mg.varentropy_s).abs().max() <= 1e-3
    assert (mg['rank_s'] == 1).all() and (mg['rank'] == 1).all()
    assert (mg.current_token == mg.current_token_s).all() and (mg.next_token == mg.next_token_s).all()
    # the tokens are not degenerate: entropies vary and lie in (0, log V]
    assert tb.entropy.std() > 0 and (tb.entropy > 0).all() and (tb.entropy <= math.log(model.config.vocab_size) + 1e-5).all()

@pytest.mark.parametrize('V', [2, 17, 1000, 32000, 151936])
def test_metrics_vs_float64_fresh_draws(V):
    seed = int(time.time_ns() % 2**31)
    g = torch.Generator().manual_seed(seed)
    rows = 9
    for scale in (0.01, 1., 10., 200.):
        z = torch.randn(rows, V, generator=g) * scale
        if V > 2: z[1, torch.randperm(V, generator=g)[:V // 2]] = -math.inf
        z[2, 0] = 1e4 if V > 1 else 0   # one extreme logit: entropy ~ 0
        y = torch.randint(0, V, (rows,), generator=g)
        y[1] = z[1].argmax()
        m, r = token_metrics(z, y, k=min(5, V), chunk_rows=4), reference_metrics(z, y)
        msg = f'seed={seed} V={V} scale={scale}'
        assert (m['entropy'].double() - r['entropy']).abs().max() <= 1e-4, msg
        fin = r['logprob'].isfinite()
        # logprob: 1e-4 absolute, relative for |logprob| > 1 (float32 spacing at -1e4 is 1e-3)
        assert ((m['logprob'].double()[fin] - r['logprob'][fin]).abs() / r['logprob'][fin].abs().clamp(min=1)).max() <= 1e-4, msg
        assert ((m['varentropy'].double() - r['varentropy']).abs() / r['varentropy'].clamp(min=1)).max() <= 1e-4, msg
        assert (distribution_entropy(z, chunk_rows=2).double() - r['entropy']).abs().max() <= 1e-4, msg
        assert (m['rank'] == 1 + (z > z.gather(1, y[:, None])).sum(-1)).all(), msg
        assert torch.equal(m['top_ids'][:, 0], z.argmax(-1)), msg

def test_metrics_bf16_logits_upcast():
    z = (torch.randn(4, 5000) * 5).bfloat16()
    m = token_metrics(z, z.argmax(-1))
    r = reference_metrics(z.float(), z.argmax(-1))
    assert m['entropy'].dtype == torch.float32 and (m['entropy'].double() - r['entropy']).abs().max() <= 1e-4

@pytest.fixture(scope='module')
def qwen(ckpts):
    return load_checkpoint(Checkpoint('q', ckpts['qwen2']), device='cpu')

def test_eos_per_sequence(qwen):
    model, tok = qwen
    ps = prompts_for(tok)
    d = DecodingConfig(max_new_tokens=10)
    t0, g0 = run(model, tok, ps, d)
    # make a token that prompt p0 first generates at step i+1 >= 2 an EOS id: p0 stops right there
    pid = 'p0'; ids = g0.generated_token_ids[pid]
    i = next(i for i in range(1, len(ids)) if ids[i] not in ids[:i])
    eos = ids[i]
    model.generation_config.eos_token_id = [tok.eos_token_id, eos]
    try: t1, g1 = run(model, tok, ps, d)
    finally: model.generation_config.eos_token_id = tok.eos_token_id
    assert g1.generated_token_ids[pid] == ids[:i + 1] and g1.finished[pid] and g1.n_tokens[pid] == i + 1
    assert t1[t1.prompt_id == pid].step.tolist() == list(range(1, i + 2))
    assert not g0.finished[pid] and len(ids) == 10
    for q in g1.index:  # every other sequence: cut at its first `eos`, or unchanged
        full = g0.generated_token_ids[q]
        cut = full[:full.index(eos) + 1] if eos in full else full
        assert g1.generated_token_ids[q] == cut and g1.finished[q] == (eos in full or g0.finished[q])
    # generated_text skips special tokens; EOS metrics are kept
    assert len(t1) == g1.n_tokens.sum()

def test_sampling_reproducible_with_seed(qwen):
    model, tok = qwen
    ps = prompts_for(tok)
    d = DecodingConfig(max_new_tokens=8, do_sample=True, temperature=1.3, top_p=0.95, top_k=50, seed=123)
    t1, g1 = run(model, tok, ps, d, batch_size=3)
    t2, g2 = run(model, tok, ps, d, batch_size=3)
    t3, g3 = run(model, tok, ps, DecodingConfig(**{**d.to_dict(), 'seed': 7}), batch_size=3)
    assert g1.generated_token_ids.to_dict() == g2.generated_token_ids.to_dict()
    assert g1.generated_token_ids.to_dict() != g3.generated_token_ids.to_dict()
    pd.testing.assert_frame_equal(t1, t2)
    assert t1.sampling_entropy.notna().all() and (t1.sampling_entropy > 0).all()
    assert (t1['rank'] > 1).any()   # sampling picks non-argmax tokens, metrics still from the raw logits
    # raw-logit metrics are the teacher-forced ones of the sampled tokens
    sdf = pd.concat(score(model, tok, [(pid, r.prompt_token_ids, r.generated_token_ids) for pid, r in g1.iterrows()], progress=False))
    mg = t1.merge(sdf, on=['prompt_id', 'step'], suffixes=('', '_s'))
    assert (mg.entropy - mg.entropy_s).abs().max() <= 1e-4 and (mg['rank'] == mg['rank_s']).all()

def test_generation_config_not_applied(qwen):
    model, tok = qwen
    ps = prompts_for(tok)[:3]
    d = DecodingConfig(max_new_tokens=6)
    _, g0 = run(model, tok, ps, d)
    gc = model.generation_config
    old = (gc.do_sample, gc.temperature, gc.repetition_penalty)
    gc.do_sample, gc.temperature, gc.repetition_penalty = True, 0.3, 5.0
    try: _, g1 = run(model, tok, ps, d)
    finally: gc.do_sample, gc.temperature, gc.repetition_penalty = old
    assert g0.generated_token_ids.to_dict() == g1.generated_token_ids.to_dict()

def test_bad_inputs(qwen, ckpts, tmp_path):
    model, tok = qwen
    with pytest.raises(InputError, match="model's context of 512"):
        list(generate(model, tok, [PromptInput('x', '', [1] * 600)], DecodingConfig(max_new_tokens=4), progress=False))
    with pytest.raises(InputError, match='empty token sequence'):
        list(generate(model, tok, [PromptInput('x', '', [])], DecodingConfig(max_new_tokens=4), progress=False))
    with pytest.raises(InputError, match='top_k_alternatives'):
        list(score(model, tok, [('a', [1], [2])], top_k_alternatives=30, progress=False))
    other = make_tiny_checkpoint(tmp_path/'other', 'qwen2', extra_tokens=('<x>',))
    with pytest.raises(CheckpointError, match='vocabulary differs'):
        check_shared_vocabulary([Checkpoint('a', ckpts['qwen2']), Checkpoint('b', other)])
    big = make_tiny_checkpoint(tmp_path/'big', 'llama', vocab_size=400)
    with pytest.raises(CheckpointError, match='vocab_size 400 differs'):
        check_shared_vocabulary([Checkpoint('a', ckpts['llama']), Checkpoint('b', big)])
    check_shared_vocabulary([Checkpoint(a, ckpts[a]) for a in ARCHS])   # same tokenizer everywhere: fine

def test_score_memory_chunks(qwen, monkeypatch):
    "The vocabulary projection only ever sees `chunk_positions` rows."
    import reasoning_entropy.engine as E
    model, tok = qwen
    seen = []
    orig = E._project
    monkeypatch.setattr(E, '_project', lambda m, h: (seen.append(h.shape[0]), orig(m, h))[1])
    items = [(f's{i}', list(range(1, 20)), list(range(20, 20 + 30 + i))) for i in range(4)]
    sdf = pd.concat(score(model, tok, items, chunk_positions=16, progress=False))
    assert max(seen) == 16 and sum(seen) == sum(len(c) for *_, c in items) == len(sdf)
