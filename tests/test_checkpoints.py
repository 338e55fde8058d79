"Checkpoint resolution and validation errors, by message."
import json, pytest, torch
from reasoning_entropy.testing import make_tiny_checkpoint
from reasoning_entropy.checkpoints import (Checkpoint, CheckpointError, resolve_checkpoints, validate_checkpoint,
    pick_device, pick_dtype, loaded, checkpoint_fingerprint, eos_token_ids)
from reasoning_entropy.errors import InputError

@pytest.fixture(scope='module')
def ck(tmp_path_factory): return make_tiny_checkpoint(tmp_path_factory.mktemp('c')/'ck-1', 'gpt2')

def test_resolve_errors():
    assert issubclass(CheckpointError, InputError)
    with pytest.raises(CheckpointError, match=r'--model_names: 1 names for 2 --model_paths'): resolve_checkpoints(['a', 'b'], ['x'])
    with pytest.raises(CheckpointError, match=r"--model_names: 'a/b' is not safe as a file name"): resolve_checkpoints(['a'], ['a/b'])
    with pytest.raises(CheckpointError, match=r"'\.\.' is not safe"): resolve_checkpoints(['a'], ['..'])
    with pytest.raises(CheckpointError, match='duplicate name'): resolve_checkpoints(['x/m', 'y/m'])
    assert [c.name for c in resolve_checkpoints(['x/m', 'y/m'], ['m1', 'm2'])] == ['m1', 'm2']

def test_validate_errors(ck, tmp_path):
    assert validate_checkpoint(Checkpoint('c', ck))['model_type'] == 'gpt2'
    with pytest.raises(CheckpointError, match=f'--model_paths: {tmp_path}/none: no such directory'):
        validate_checkpoint(Checkpoint('n', tmp_path/'none'))
    f = tmp_path/'file'; f.write_text('x')
    with pytest.raises(CheckpointError, match='not a directory'): validate_checkpoint(Checkpoint('n', f))
    e = tmp_path/'e'; e.mkdir()
    with pytest.raises(CheckpointError, match='no config.json'): validate_checkpoint(Checkpoint('n', e))
    (e/'config.json').write_text('{oops')
    with pytest.raises(CheckpointError, match='config.json is not valid JSON'): validate_checkpoint(Checkpoint('n', e))
    (e/'config.json').write_text(json.dumps({'model_type': 'gpt2'}))
    with pytest.raises(CheckpointError, match='no weight files'): validate_checkpoint(Checkpoint('n', e))
    (e/'model.safetensors').write_bytes(b'')
    with pytest.raises(CheckpointError, match='no tokenizer files'): validate_checkpoint(Checkpoint('n', e))
    r = tmp_path/'r'; r.mkdir()
    (r/'config.json').write_text(json.dumps({'model_type': 'custom_lm', 'auto_map': {'AutoConfig': 'c.C', 'AutoModelForCausalLM': 'm.M'}}))
    with pytest.raises(CheckpointError, match='pass --trust_remote_code'): validate_checkpoint(Checkpoint('n', r))
    (r/'config.json').write_text(json.dumps({'model_type': 'custom_lm'}))
    (r/'model.safetensors').write_bytes(b''); (r/'tokenizer.json').write_text('{}')
    with pytest.raises(CheckpointError, match="unknown model type 'custom_lm'"): validate_checkpoint(Checkpoint('n', r))

def test_device_dtype():
    assert pick_device('cpu').type == 'cpu' and pick_dtype(torch.device('cpu')) == torch.float32
    assert pick_device().type in ('cuda', 'mps', 'cpu')
    with pytest.raises(InputError, match='--dtype: must be one of auto'): pick_dtype('cpu', 'float8')

def test_loaded_frees_and_fingerprint(ck):
    fp = checkpoint_fingerprint(ck)
    with loaded(Checkpoint('c', ck)) as (m, t):
        assert eos_token_ids(m, t) == [t.eos_token_id] and t.pad_token_id is not None
        assert sum(p.numel() for p in m.parameters()) > 0
    assert sum(p.numel() for p in m.parameters()) == 0
    assert checkpoint_fingerprint(ck) == fp
