"Bad input: one line naming the flag/file/line, exit status 2, no traceback, no partial output (DESIGN §7)."
import json, os, subprocess, sys
from pathlib import Path
import pytest
from reasoning_entropy.cli import main

from reasoning_entropy.store import RunStore, LEGACY_FILES
from helpers import cli, matching
GOOD = json.dumps({"conversations": [{"role": "system", "content": "Think step by step."},
                                     {"role": "user", "content": "What is 2 + 3?"},
                                     {"role": "assistant", "content": "<think>2+3=5</think>\n\nAnswer: \\boxed{5}"}]})


def run_cli(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def no_outputs(out: Path):
    "Nothing of a run was written: none of the original script's files, no store, no manifest."
    if not out.exists(): return True
    st, found = RunStore(out), set(out.iterdir())
    return not (found & {st.legacy_path(f) for f in LEGACY_FILES}) and st.tokens_dir.parent not in found and st.manifest_path not in found \
        and not matching(st.legacy_path("token_stats", "*"))  # any checkpoint's token stats


@pytest.fixture
def data_file(tmp_path):
    p = tmp_path / "data.jsonl"; p.write_text(GOOD + "\n" + GOOD + "\n"); return p


def check(args, capsys, message, out):
    try: code, err = run_cli(args, capsys)
    except SystemExit as e: code, err = e.code, capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0], lines[0]
    assert "Traceback" not in err
    assert no_outputs(out)


def test_count_mismatch(tiny_pair, tmp_path, capsys, data_file):
    a, b = tiny_pair; out = tmp_path / "out"
    check(["compare", "--model_paths", str(a), str(b), "--model_names", "A", "--data_path", str(data_file), "--output_dir", str(out)],
          capsys, "--model_names: 1 model_names for 2 checkpoints of --model_paths", out)


def test_duplicate_names(tiny_pair, tmp_path, capsys, data_file):
    a, b = tiny_pair; out = tmp_path / "out"
    check(["compare", "--model_paths", str(a), str(b), "--model_names", "A", "A", "--data_path", str(data_file), "--output_dir", str(out)],
          capsys, "--model_names: duplicate name(s) A", out)


@pytest.mark.parametrize("name", ["a/b", "..", "x\\y"])
def test_unsafe_names(tiny_pair, tmp_path, capsys, data_file, name):
    a, _ = tiny_pair; out = tmp_path / "out"
    check(["compare", "--model_paths", str(a), "--model_names", name, "--data_path", str(data_file), "--output_dir", str(out)],
          capsys, f"--model_names: {name!r} is not safe as a file name", out)


def test_missing_fourth_path_fails_fast(tiny_pair, tmp_path, capsys, data_file):
    a, b = tiny_pair; out = tmp_path / "out"
    check(["compare", "--model_paths", str(a), str(b), str(a), str(tmp_path / "typo"), "--model_names", "A", "B", "C", "D",
           "--data_path", str(data_file), "--output_dir", str(out)], capsys, f"--model_paths: {tmp_path / 'typo'}: no such directory", out)


def test_not_a_checkpoint(tiny_pair, tmp_path, capsys, data_file):
    a, _ = tiny_pair; out = tmp_path / "out"; empty = tmp_path / "empty"; empty.mkdir()
    check(["compare", "--model_paths", str(a), str(empty), "--model_names", "A", "B", "--data_path", str(data_file), "--output_dir", str(out)],
          capsys, f"--model_paths: {empty}: no config.json (not a model checkpoint)", out)


def test_remote_code_needed(tiny_pair, tmp_path, capsys, data_file):
    import shutil
    a, _ = tiny_pair; out = tmp_path / "out"; rc = tmp_path / "remote"
    shutil.copytree(a, rc)
    cfg = json.loads((rc / "config.json").read_text())
    cfg.update(model_type="my_custom_lm", auto_map={"AutoConfig": "modeling_custom.MyConfig", "AutoModelForCausalLM": "modeling_custom.MyLM"})
    (rc / "config.json").write_text(json.dumps(cfg))
    check(["compare", "--model_paths", str(rc), "--model_names", "R", "--data_path", str(data_file), "--output_dir", str(out)],
          capsys, "needs code shipped with the checkpoint; pass --trust_remote_code", out)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("", "empty file"),
    ("this is not json\n", ":1: not valid JSON"),
    (GOOD + "\n" + GOOD[:-5] + "\n", ":2: not valid JSON"),
    (GOOD + "\n" + json.dumps({"conversations": [{"role": "system", "content": "x"}]}) + "\n", ":2: no user message before the first assistant turn"),
])
def test_bad_data(tiny_pair, tmp_path, capsys, content, message):
    a, _ = tiny_pair; out = tmp_path / "out"; p = tmp_path / "d.jsonl"
    if content is not None: p.write_text(content)
    check(["compare", "--model_paths", str(a), "--model_names", "A", "--data_path", str(p), "--output_dir", str(out)],
          capsys, f"{p}{'' if message.startswith(':') else ': '}{message}", out)


@pytest.mark.parametrize("flag, value", [("--num_examples", "0"), ("--max_new_tokens", "-1"), ("--batch_size", "0")])
def test_non_positive_counts(tiny_pair, tmp_path, capsys, data_file, flag, value):
    a, _ = tiny_pair; out = tmp_path / "out"
    check(["compare", "--model_paths", str(a), "--model_names", "A", "--data_path", str(data_file), "--output_dir", str(out), flag, value],
          capsys, f"{flag}: must be a positive integer, got {value}", out)


def test_prompt_longer_than_context(tiny_pair, tmp_path, capsys):
    a, _ = tiny_pair; out = tmp_path / "out"; p = tmp_path / "long.jsonl"
    long = json.dumps({"conversations": [{"role": "user", "content": "word " * 2000}]})
    p.write_text(GOOD + "\n\n" + long + "\n")
    check(["compare", "--model_paths", str(a), "--model_names", "A", "--data_path", str(p), "--output_dir", str(out)],
          capsys, f"{p}:3: prompt '1' is", out)


@pytest.mark.parametrize("pair, message", [(["A", "A"], "--noise_pair: needs two different checkpoint names, got 'A' twice"),
                                           (["A"], "argument --noise_pair: expected 2 arguments")])
def test_noise_pair_needs_two_different_names(tmp_path, capsys, pair, message):
    "--noise_pair A A (a checkpoint paired with itself measures no noise) or one name: one line naming the flag, exit 2, before any run is read."
    out = tmp_path / "out"
    check(["report", "--run_dir", str(out), "--noise_pair", *pair], capsys, message, out)
    assert not out.exists()

def test_bad_flag_value_is_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    check(["compare", "--num_examples", "many"], capsys, "argument --num_examples: invalid int value: 'many'", out)


def test_different_config_in_used_output_dir(tiny_pair, tmp_path, capsys, data_file):
    a, _ = tiny_pair; out = tmp_path / "out"
    args = ["compare", "--model_paths", str(a), "--model_names", "A", "--data_path", str(data_file), "--output_dir", str(out), "--max_new_tokens", "4"]
    assert main(args) == 0
    capsys.readouterr()
    before = sorted(p.name for p in out.iterdir())
    code, err = run_cli(args[:-1] + ["5"], capsys)
    assert code == 2 and "holds a run with a different configuration (decoding.max_new_tokens: 4 → 5)" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == before
    assert main(args[:-1] + ["5", "--overwrite"]) == 0


def test_score_mixed_vocabularies_is_not_an_error(tmp_path, capsys, data_file):
    "Two vocabularies once stopped score; now each vocabulary group scores its own sequences (and an unknown --sequences is refused)."
    from reasoning_entropy.store import RunStore
    from reasoning_entropy.testing import make_tiny_checkpoint
    a = make_tiny_checkpoint(tmp_path / "a", seed=1)
    b = make_tiny_checkpoint(tmp_path / "b", seed=2, extra_tokens=("<extra>",))
    out = tmp_path / "out"
    assert main(["compare", "--model_paths", str(a), str(b), "--model_names", "A", "B", "--data_path", str(data_file),
                 "--output_dir", str(out), "--max_new_tokens", "3"]) == 0
    capsys.readouterr()
    code, err = run_cli(["score", "--run_dir", str(out), "--sequences", "Z"], capsys)
    assert code == 2 and err.strip().splitlines() == [
        "reasoning-entropy score: error: --sequences: 'Z' is not a checkpoint of the run (A, B) nor 'reference'"]
    assert not RunStore(out).scored_dir.exists()
    code, err = run_cli(["score", "--run_dir", str(out)], capsys)
    assert code == 0, err
    assert [g["models"] for g in RunStore(out).scoring_state()["groups"]] == [["A"], ["B"]]


def test_console_script_subprocess_no_traceback(tmp_path):
    r = cli("compare", "--model_paths", tmp_path / "nope", "--output_dir", tmp_path / "out", log_level=None)
    assert r.returncode == 2
    assert r.stderr.strip() == f"reasoning-entropy compare: error: --model_paths: {tmp_path / 'nope'}: no such directory"
    assert not (tmp_path / "out").exists()


_HEAVY = ("torch", "transformers", "matplotlib")
_PROBE = """import sys
from reasoning_entropy.cli import main
try: code = main(sys.argv[1:])
except SystemExit as e: code = e.code
print('heavy:', sorted(m for m in %r if m in sys.modules), 'status:', code)""" % (_HEAVY,)


@pytest.mark.parametrize("case", ["help-compare", "help-score", "help-report", "help-demo", "no-such-path", "count", "names",
                                  "bad-data", "not-a-run", "bad-dtype"])
def test_help_and_bad_input_import_no_model_library(tiny_pair, tmp_path, case):
    "`--help` of every subcommand and the bad-input paths answer without importing torch, transformers or matplotlib."
    a, _ = tiny_pair; bad = tmp_path / "bad.jsonl"; bad.write_text("not json\n")
    args = {"help-compare": ["compare", "--help"], "help-score": ["score", "--help"], "help-report": ["report", "--help"],
            "help-demo": ["demo", "--help"], "no-such-path": ["compare", "--model_paths", str(tmp_path / "nope")],
            "count": ["compare", "--model_paths", str(a), "--num_examples", "0"],
            "names": ["compare", "--model_paths", str(a), "--model_names", "A", "B"],
            "bad-data": ["compare", "--model_paths", str(a), "--data_path", str(bad), "--output_dir", str(tmp_path / "o")],
            "not-a-run": ["score", "--run_dir", str(tmp_path)], "bad-dtype": ["report", "--run_dir", str(tmp_path), "--dtype", "fp8"]}[case]
    r = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.stdout.strip().splitlines()[-1] == f"heavy: [] status: {0 if case.startswith('help') else 2}", (r.stdout[-500:], r.stderr)
    if not case.startswith("help"): assert len(r.stderr.strip().splitlines()) == 1 and "error:" in r.stderr
    assert not (tmp_path / "o").exists()


def test_truncated_weights_stop_before_any_work(tiny_pair, tmp_path, capsys, data_file):
    "A checkpoint whose model.safetensors was cut short (a save still in progress): one line naming it, exit 2, nothing written."
    import shutil
    a, b = tiny_pair; cut = tmp_path / "cut"; shutil.copytree(b, cut)
    w = cut / "model.safetensors"; w.write_bytes(w.read_bytes()[:4096])
    out = tmp_path / "out"
    check(["compare", "--model_paths", str(a), str(cut), "--model_names", "A", "B", "--data_path", str(data_file), "--output_dir", str(out)],
          capsys, f"--model_paths: {cut}: model.safetensors is truncated (4096 bytes;", out)
