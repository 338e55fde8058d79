"Helpers shared by the tests: the command line in a subprocess, with the test environment; the files a glob path names."
import os, subprocess, sys
from pathlib import Path


def cli_env(env: dict | None = None) -> dict:
    "This process's environment with one OpenMP thread and no tokenizer threads, plus `env` (what every CLI subprocess of the tests runs with)."
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}


def cli_argv(*args, log_level: str | None = "WARNING", prefix=None) -> list:
    """`python -m reasoning_entropy [--log_level LEVEL] ARGS` as an argument list (no --log_level when `log_level` is None);
    `prefix` is what comes before `-m reasoning_entropy` (default: this interpreter), e.g. a torchrun command or another venv's python."""
    head = [str(p) for p in (prefix or [sys.executable])]
    return [*head, "-m", "reasoning_entropy", *(["--log_level", log_level] if log_level else []), *map(str, args)]


def cli(*args, log_level: str | None = "WARNING", prefix=None, env: dict | None = None, cwd=None, timeout: float | None = None,
        check: bool = False) -> subprocess.CompletedProcess:
    """Run the command line (`cli_argv`) in a subprocess with `cli_env(env)`, text output captured, and return it;
    `check`: assert it exited 0, showing the end of its stderr."""
    r = subprocess.run(cli_argv(*args, log_level=log_level, prefix=prefix), capture_output=True, text=True, env=cli_env(env),
                       cwd=cwd, timeout=timeout)
    if check: assert r.returncode == 0, r.stderr[-3000:]
    return r


def cli_popen(*args, log_level: str | None = "WARNING", prefix=None, env: dict | None = None, **kw) -> subprocess.Popen:
    "Start the command line (`cli_argv`) in a subprocess with `cli_env(env)`, to stop or kill it mid-run; `kw` go to `subprocess.Popen`."
    return subprocess.Popen(cli_argv(*args, log_level=log_level, prefix=prefix), env=cli_env(env), **kw)


def matching(path) -> list:
    "The existing paths that `path` names when its last part is a glob pattern (e.g. `store.figure_path('aligned*')`), sorted."
    path = Path(path)
    return sorted(path.parent.glob(path.name))


def tiny_trainer_parts(tmp_path, n_prompts: int, length: int, batch: int, max_steps: int) -> tuple:
    "(tokenizer, model, train set, TrainingArguments) of a tiny random checkpoint fine-tuned on the bundled prompts' answers, on CPU."
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments
    from reasoning_entropy.data import load_prompts
    from reasoning_entropy.testing import make_tiny_checkpoint
    base = make_tiny_checkpoint(tmp_path / "base", seed=0)
    tok, model = AutoTokenizer.from_pretrained(base), AutoModelForCausalLM.from_pretrained(base)
    convs = [p.messages + [{"role": "assistant", "content": p.reference}] for p in load_prompts(None, n_prompts)]
    train = [dict(input_ids=ids[:length], labels=ids[:length]) for ids in (tok.apply_chat_template(c, tokenize=True)["input_ids"] for c in convs)]
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=batch, max_steps=max_steps, save_steps=2,
                             learning_rate=3e-3, use_cpu=True, report_to=[], disable_tqdm=True, logging_steps=100, seed=0)
    return tok, model, train, args
