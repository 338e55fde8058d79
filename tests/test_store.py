"""The run store end to end: a writer process killed with SIGKILL leaves a store that opens consistent.
(The unit examples of the store are in nbs/04_store.ipynb.)"""
import json, signal, subprocess, sys, textwrap, time, zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from reasoning_entropy.store import RunStore, TOKENS_COLUMNS

CFG = {'models': [{'name': 'ck2', 'path': '/m/2'}, {'name': 'ck1', 'path': '/m/1'}],
       'max_new_tokens': 256, 'data_path': 'd.jsonl', 'data_fingerprint': 'sha256:ab'}


def frames(model: str, pids: list, index: dict):
    "Deterministic tokens/generations frames for `pids` (prompt i gets i+1 tokens)."
    rows, grows = [], []
    for p in pids:
        i = index[p]
        n = i + 1
        for s in range(1, n + 1):
            e = (zlib.crc32(f"{model}|{p}|{s}".encode()) % 1000) / 250.0
            rows.append(dict(prompt_id=p, sample=0, step=s, token_id=100 + s, current_token=f' t{s-1}', next_token=f' t{s}',
                             entropy=e, logprob=-e / 3, probability=float(np.exp(-e / 3)), rank=1 + s % 3,
                             varentropy=e / 2, top_ids=[100 + s, 7, 8], top_logprobs=[-e / 3, -2.0, -2.5],
                             sampling_entropy=np.nan))
        grows.append(dict(prompt_id=p, prompt_index=i, prompt_text=f'Question {p}', prompt_token_ids=[1, 2, 3],
                          generated_token_ids=list(range(101, 101 + n)), generated_text=f'so \\boxed{{{i}}}',
                          finished=i % 2 == 0, n_tokens=n))
    return pd.DataFrame(rows, columns=TOKENS_COLUMNS), pd.DataFrame(grows)


WRITER = textwrap.dedent('''
    import sys, numpy as np, pandas as pd
    sys.path.insert(0, {tests!r})
    from test_store import frames, CFG
    from reasoning_entropy.store import RunStore
    st = RunStore({out!r}).open(CFG)
    pids = [f'p{{i}}' for i in range(100000)]
    index = {{p: i % 7 for i, p in enumerate(pids)}}
    done = st.done_prompts('ck1')
    todo = [p for p in pids if p not in done]
    print('ready', flush=True)
    for k in range(0, len(todo), 3):
        st.write_batch('ck1', *frames('ck1', todo[k:k+3], index))
''')


def test_sigkill_leaves_a_consistent_store(tmp_path):
    out = tmp_path / 'run'
    code = WRITER.format(tests=str(Path(__file__).parent), out=str(out))
    for attempt, delay in enumerate((1.0, 0.7)):
        p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
        assert p.stdout.readline().strip() == b'ready'
        time.sleep(delay)
        p.send_signal(signal.SIGKILL); p.wait()
        st = RunStore(out).open(CFG)  # recovery
        toks = {f.name for f in (st.tokens_dir / 'model=ck1').iterdir()}
        gens = {f.name for f in (st.generations_dir / 'model=ck1').iterdir()}
        assert toks == gens and not any(n.startswith('.') for n in toks)
        tk, gn = st.read_tokens(), st.read_generations()
        assert len(gn) == len(st.done_prompts('ck1')) > 0
        assert gn.prompt_id.is_unique
        # every committed prompt has exactly its n_tokens token rows
        counts = tk.groupby('prompt_id').size()
        assert (counts.reindex(gn.prompt_id).to_numpy() == gn.n_tokens.to_numpy()).all()
        for f in (st.tokens_dir / 'model=ck1').iterdir(): pq.read_metadata(f)  # every file is whole
        json.loads(st.manifest_path.read_text())
