"""A stand-alone emulation of the original script, `model_comparison_analysis.py`, for the whole-process benchmark.

The original file is not available; its README (flags, data format, outputs, "all models are loaded
simultaneously") and DESIGN.md describe what it does, and this script does that, the way it did it:
load every model at once, then for each model, for each prompt alone, `model.generate(output_scores=True,
return_dict_in_generate=True)` and a Python loop over the step scores (softmax, entropy, probability of the
chosen token, token texts), then pandas/matplotlib for its files:
  {model_name}_token_stats.csv, prompt_level_results.csv, results_summary.json,
  aggregated_entropy_distribution.png, entropy_over_steps.png (+ {model_name}_all_tokens_detailed.csv).
Prompts: system + user messages through the tokenizer's chat template (add_generation_prompt=True), else the
same plain format as reasoning_entropy's documented fallback ("System: …\\n\\nUser: …\\n\\nAssistant:"), so
both ways generate from the same token ids. Decoding: greedy, `max_new_tokens`, stop at EOS.

Not part of the original: `--dump_ids FILE` writes the prompt and generated token ids (for the benchmark's
same-tokens check).

Usage: python benchmarks/original_way.py --model_paths A B --model_names a b --data_path F.jsonl \
           --num_examples 60 --max_new_tokens 64 --output_dir DIR
"""
import argparse
import json
import os
import time

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from tqdm import tqdm


def parse_args():
    p = argparse.ArgumentParser(description='Compare model checkpoints by token-level entropy')
    p.add_argument('--model_paths', nargs='+', required=True)
    p.add_argument('--model_names', nargs='+', required=True)
    p.add_argument('--data_path', default='data_full.jsonl')
    p.add_argument('--num_examples', type=int, default=1000)
    p.add_argument('--max_new_tokens', type=int, default=256)
    p.add_argument('--output_dir', default='results')
    p.add_argument('--save_detailed_tokens', action='store_true')
    p.add_argument('--dump_ids', default=None, help=argparse.SUPPRESS)
    return p.parse_args()


def load_data(path, n):
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= n:
                break
    return rows


def build_messages(row):
    msgs = []
    for m in row['conversations']:
        if m['role'] == 'assistant':
            break
        msgs.append({'role': m['role'], 'content': m['content']})
    return msgs


ROLE_NAMES = {'system': 'System', 'user': 'User', 'assistant': 'Assistant', 'tool': 'Tool'}


def format_prompt(tokenizer, msgs):
    if getattr(tokenizer, 'chat_template', None):
        return tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False), False
    return '\n\n'.join(f"{ROLE_NAMES[m['role']]}: {m['content']}" for m in msgs) + '\n\nAssistant:', True


def load_models(paths, names, device):
    models = {}
    dtype = torch.float32 if device.type == 'cpu' else torch.bfloat16
    for path, name in zip(paths, names):
        print(f'Loading {name} from {path}')
        tok = AutoTokenizer.from_pretrained(path)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
        model.eval()
        models[name] = (model, tok)
    return models


def get_stats_for_generation(model, tokenizer, prompt_ids, max_new_tokens, device):
    input_ids = torch.tensor([prompt_ids], device=device)
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                             max_new_tokens=max_new_tokens, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)
    gen = out.sequences[0, input_ids.shape[1]:]
    stats = []
    prev = prompt_ids[-1]
    for step, scores in enumerate(out.scores):
        probs = torch.softmax(scores[0].float(), dim=-1)
        entropy = -(probs * torch.log(probs + 1e-12)).sum().item()
        tid = gen[step].item()
        stats.append({'step': step + 1, 'current_token': tokenizer.decode([prev]),
                      'next_token': tokenizer.decode([tid]), 'entropy': entropy, 'probability': probs[tid].item()})
        prev = tid
    return gen.tolist(), stats


def token_stats(df):
    g = df.groupby('next_token')
    out = pd.DataFrame({'count': g.size(), 'entropy_mean': g['entropy'].mean(), 'entropy_median': g['entropy'].median(),
                        'entropy_std': g['entropy'].std(ddof=0), 'entropy_min': g['entropy'].min(),
                        'entropy_max': g['entropy'].max(), 'probability_mean': g['probability'].mean()})
    return out.reset_index().rename(columns={'next_token': 'token'}).sort_values('count', ascending=False)


def plot_distribution(all_stats, path):
    plt.figure(figsize=(9, 5.5))
    for name, df in all_stats.items():
        plt.hist(df['entropy'], bins=50, alpha=0.5, density=True, label=f"{name} (mean={df['entropy'].mean():.3f})")
    plt.xlabel('entropy (nats)'); plt.ylabel('density'); plt.title('Token entropy distribution per model')
    plt.legend(); plt.grid(alpha=0.3)
    plt.savefig(path, dpi=120, bbox_inches='tight'); plt.close()


def plot_over_steps(all_stats, path, n_samples=3):
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8.5), sharex=True)
    for name, df in all_stats.items():
        s = df.groupby('step')['entropy'].agg(['mean', 'std', 'count'])
        half = 1.96 * s['std'].fillna(0) / np.sqrt(s['count'])
        top.plot(s.index, s['mean'], label=name)
        top.fill_between(s.index, s['mean'] - half, s['mean'] + half, alpha=0.2)
        for pid in list(dict.fromkeys(df['prompt_id']))[:n_samples]:
            t = df[df['prompt_id'] == pid]
            bottom.plot(t['step'], t['entropy'], label=f'{name} | prompt {pid}')
    top.set_ylabel('mean entropy'); top.legend(); top.grid(alpha=0.3)
    bottom.set_xlabel('generation step'); bottom.set_ylabel('entropy'); bottom.legend(fontsize='small'); bottom.grid(alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches='tight'); plt.close(fig)


def main():
    args = parse_args()
    assert len(args.model_paths) == len(args.model_names), 'need one name per model path'
    os.makedirs(args.output_dir, exist_ok=True)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    print(f'Using device: {device}')
    rows = load_data(args.data_path, args.num_examples)
    print(f'Loaded {len(rows)} examples from {args.data_path}')
    models = load_models(args.model_paths, args.model_names, device)  # all models at once

    prompt_results, all_stats, dump = [], {}, {}
    t_start = time.time()
    for name, (model, tok) in models.items():
        rows_stats = []
        n_tok = 0
        for i, row in enumerate(tqdm(rows, desc=name)):
            msgs = build_messages(row)
            text, plain = format_prompt(tok, msgs)
            prompt_ids = tok(text, add_special_tokens=plain)['input_ids']
            gen_ids, stats = get_stats_for_generation(model, tok, prompt_ids, args.max_new_tokens, device)
            if i == 0:
                print(f'[debug] {name}: prompt length {len(prompt_ids)}, generation length {len(gen_ids)}')
                print('[debug] sample:', stats[:5])
            for s in stats:
                s['prompt_id'] = str(row.get('id', i))
            rows_stats += stats
            n_tok += len(stats)
            e = np.array([s['entropy'] for s in stats]) if stats else np.array([np.nan])
            p = np.array([s['probability'] for s in stats]) if stats else np.array([np.nan])
            prompt_results.append({'prompt_id': str(row.get('id', i)), 'model': name, 'n_tokens': len(stats),
                                   'entropy_mean': e.mean(), 'entropy_median': np.median(e), 'entropy_std': e.std(),
                                   'entropy_min': e.min(), 'entropy_max': e.max(), 'probability_mean': p.mean(),
                                   'generated_text': tok.decode(gen_ids, skip_special_tokens=True)})
            dump[f'{name}\t{i}'] = {'prompt_ids': prompt_ids, 'generated_ids': gen_ids}
        print(f'[debug] {name}: {n_tok} tokens analyzed')
        df = pd.DataFrame(rows_stats)
        all_stats[name] = df
        token_stats(df).to_csv(os.path.join(args.output_dir, f'{name}_token_stats.csv'), index=False)  # saved per model
        if args.save_detailed_tokens:
            df.to_csv(os.path.join(args.output_dir, f'{name}_all_tokens_detailed.csv'), index=False)
    seconds = time.time() - t_start

    pd.DataFrame(prompt_results).to_csv(os.path.join(args.output_dir, 'prompt_level_results.csv'), index=False)
    summary = {'model_paths': dict(zip(args.model_names, args.model_paths)), 'data_path': args.data_path,
               'num_examples': len(rows), 'max_new_tokens': args.max_new_tokens, 'generation_seconds': seconds, 'models': {}}
    for name, df in all_stats.items():
        e = df['entropy']
        summary['models'][name] = {'tokens_analyzed': int(len(df)), 'entropy_mean': float(e.mean()),
                                   'entropy_median': float(e.median()), 'entropy_std': float(e.std()),
                                   'entropy_min': float(e.min()), 'entropy_max': float(e.max()),
                                   'probability_mean': float(df['probability'].mean()),
                                   'quantiles': {str(q): float(e.quantile(q)) for q in (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)}}
    with open(os.path.join(args.output_dir, 'results_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    plot_distribution(all_stats, os.path.join(args.output_dir, 'aggregated_entropy_distribution.png'))
    plot_over_steps(all_stats, os.path.join(args.output_dir, 'entropy_over_steps.png'))
    if args.dump_ids:
        with open(args.dump_ids, 'w') as f:
            json.dump(dump, f)
    print(f'Results saved to {args.output_dir}')


if __name__ == '__main__':
    main()
