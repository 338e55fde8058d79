"Runs of a live training job from the command line: a Trainer output directory, a run that grows, a checkpoint that fails mid-run."
import json, shutil
from pathlib import Path
import pandas as pd
import pytest

from reasoning_entropy.store import RunStore
from helpers import cli, tiny_trainer_parts

SMALL = ["--num_examples", "3", "--max_new_tokens", "5"]


@pytest.fixture(scope="module")
def trainer_out(tiny_pair, tmp_path_factory):
    "A Trainer-style output directory: checkpoint-10 (trainer_state.json says step 10) and checkpoint-30, saved so far."
    out = tmp_path_factory.mktemp("train") / "out"
    for (n, src) in zip((30, 10), tiny_pair):
        shutil.copytree(src, out / f"checkpoint-{n}")
        (out / f"checkpoint-{n}" / "trainer_state.json").write_text(json.dumps({"global_step": n, "log_history": []}))
    (out / "runs").mkdir()  # TensorBoard logs, as the Trainer leaves them
    return out


def test_training_directory_grows_by_step(trainer_out, tiny_pair, tmp_path):
    "--model_paths out/ expands to checkpoint-N in step order; a checkpoint saved later joins the same run."
    run = tmp_path / "run"
    r = cli("compare", "--model_paths", trainer_out, "--output_dir", run, *SMALL)
    assert r.returncode == 0, r.stderr
    store = RunStore(run)
    assert store.models == ["step-10", "step-30"] and store.steps == {"step-10": 10, "step-30": 30}
    summary = json.loads(store.legacy_path("results_summary.json").read_text())
    assert [(m, v["training_step"]) for m, v in summary["models"].items()] == [("step-10", 10), ("step-30", 30)]
    before = {m: sorted(f.name for f in (store.generations_dir / f"model={m}").iterdir()) for m in store.models}

    shutil.copytree(tiny_pair[0], trainer_out / "checkpoint-20")  # the job saves another checkpoint (no trainer_state.json)
    r = cli("compare", "--model_paths", trainer_out, "--output_dir", run, *SMALL)
    assert r.returncode == 0, r.stderr
    store = RunStore(run)
    assert store.steps == {"step-10": 10, "step-20": 20, "step-30": 30}
    assert {m: sorted(f.name for f in (store.generations_dir / f"model={m}").iterdir()) for m in before} == before
    assert [i["added_models"] for i in store.manifest["invocations"]] == [["step-10", "step-30"], ["step-20"]]
    once = tmp_path / "once"
    assert cli("compare", "--model_paths", trainer_out, "--output_dir", once, *SMALL).returncode == 0
    pd.testing.assert_frame_equal(store.read_tokens(), RunStore(once).read_tokens())
    assert store.legacy_path("prompt_level_results.csv").read_bytes() == RunStore(once).legacy_path("prompt_level_results.csv").read_bytes()


def test_steps_flag_and_refusals(tiny_pair, tmp_path):
    "--steps sets the steps; a bad value, a wrong count, a changed decoding: exit 2, one line, nothing changed."
    a, b = tiny_pair
    run = tmp_path / "run"
    r = cli("compare", "--model_paths", a, b, "--steps", "200", "100", "--output_dir", run, *SMALL)
    assert r.returncode == 0, r.stderr
    assert RunStore(run).models == ["ckpt-2", "ckpt-1"]  # step order
    r = cli("compare", "--model_paths", a, b, "--steps", "100", "--output_dir", run, *SMALL)
    assert (r.returncode, r.stderr.strip()) == (2, "reasoning-entropy compare: error: --steps: 1 steps for 2 checkpoints of --model_paths")
    r = cli("compare", "--model_paths", a, "--steps", "x", "--output_dir", run, *SMALL)
    assert r.returncode == 2 and "--steps: invalid int value: 'x'" in r.stderr
    manifest = RunStore(run).manifest_path.read_bytes()
    r = cli("compare", "--model_paths", a, b, "--steps", "200", "100", "--output_dir", run, "--num_examples", "3", "--max_new_tokens", "6")
    assert r.returncode == 2 and "decoding.max_new_tokens: 5 → 6" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert RunStore(run).manifest_path.read_bytes() == manifest


def test_checkpoint_failing_mid_run_keeps_the_others(tiny_pair, tmp_path):
    "A checkpoint that passes validation but fails to load: logged by name, exit 1, the others' files written."
    a, b = tiny_pair
    bad = tmp_path / "ckpt-bad"; shutil.copytree(b, bad)
    cfg = json.loads((bad / "config.json").read_text()); cfg["intermediate_size"] *= 2
    (bad / "config.json").write_text(json.dumps(cfg))
    run = tmp_path / "run"
    r = cli("compare", "--model_paths", a, bad, "--output_dir", run, *SMALL)
    assert r.returncode == 1, r.stderr
    assert "ckpt-bad: failed (RuntimeError" in r.stderr  # the log names it
    assert r.stderr.strip().splitlines()[-1].startswith(
        "reasoning-entropy compare: error: 1 checkpoint(s) failed (the others' results are kept): ckpt-bad: RuntimeError")
    st = RunStore(run)
    assert st.legacy_path("token_stats", "ckpt-1").exists() and not st.legacy_path("token_stats", "ckpt-bad").exists()
    assert set(pd.read_csv(st.legacy_path("prompt_level_results.csv")).model) == {"ckpt-1"}
    assert st.manifest["progress"]["ckpt-bad"]["failed"]["error"].startswith("RuntimeError")


def test_trainer_callback_run_renders(tmp_path):
    "A Trainer run with EntropyProbeCallback leaves a run that `reasoning-entropy report --run_dir` renders, axis = step."
    from transformers import Trainer
    from reasoning_entropy.callback import EntropyProbeCallback
    tok, model, train, args = tiny_trainer_parts(tmp_path, n_prompts=16, length=64, batch=2, max_steps=4)
    run = tmp_path / "probe_run"
    Trainer(model=model, args=args, train_dataset=train, processing_class=tok,
            callbacks=[EntropyProbeCallback(run, num_examples=4, max_new_tokens=8)]).train()
    assert RunStore(run).steps == {"step-2": 2, "step-4": 4}
    r = cli("report", "--run_dir", run)
    assert r.returncode == 0, r.stderr
    assert RunStore(run).report_html.exists() and "step-4" in RunStore(run).report_html.read_text()


def test_probe_summary_reaches_tensorboard(tmp_path):
    """A Trainer that reports to TensorBoard: each probe's summary is in its event file, as `entropy_probe/…` scalars at the
    step of the checkpoint, beside the loss (the Trainer's own logging path)."""
    from transformers import Trainer
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from reasoning_entropy.callback import EntropyProbeCallback
    tok, model, train, args = tiny_trainer_parts(tmp_path, n_prompts=16, length=64, batch=2, max_steps=4)
    args.report_to, args.logging_steps = ["tensorboard"], 1
    probe = EntropyProbeCallback(tmp_path / "probe_run", num_examples=4, max_new_tokens=8)
    Trainer(model=model, args=args, train_dataset=train, processing_class=tok, callbacks=[probe]).train()
    events = sorted(Path(args.output_dir).rglob("events.out.tfevents.*"))
    assert events, list(Path(args.output_dir).rglob("*"))
    acc = EventAccumulator(str(events[0].parent)); acc.Reload()
    tags = acc.Tags()["scalars"]
    want = [t for t in tags if "entropy_probe/" in t]
    assert any(t.endswith("entropy_probe/mean_entropy") for t in want) and any(t.endswith("entropy_probe/seconds") for t in want), tags
    assert any(t.endswith("loss") for t in tags)
    mean = next(t for t in want if t.endswith("entropy_probe/mean_entropy"))
    got = {e.step: e.value for e in acc.Scalars(mean)}
    assert sorted(got) == [2, 4]
    assert abs(got[4] - probe.metrics[4]["entropy_probe/mean_entropy"]) < 1e-5  # float32 in the event file


def test_probe_summary_reaches_wandb_offline(tmp_path, monkeypatch):
    "The same with Weights & Biases in offline mode (no network): the W&B run holds the last probe's `entropy_probe/…` values."
    pytest.importorskip("wandb")
    from transformers import Trainer
    from reasoning_entropy.callback import EntropyProbeCallback
    monkeypatch.setenv("WANDB_MODE", "offline"); monkeypatch.setenv("WANDB_DIR", str(tmp_path)); monkeypatch.setenv("WANDB_SILENT", "true")
    tok, model, train, args = tiny_trainer_parts(tmp_path, n_prompts=16, length=64, batch=2, max_steps=2)
    args.report_to = ["wandb"]
    probe = EntropyProbeCallback(tmp_path / "probe_run", num_examples=4, max_new_tokens=8)
    Trainer(model=model, args=args, train_dataset=train, processing_class=tok, callbacks=[probe]).train()
    import wandb
    try:
        summary = dict(wandb.run.summary)  # what the W&B integration logged (an offline run keeps it in its .wandb file)
        key = next(k for k in summary if k.endswith("entropy_probe/mean_entropy"))
        assert abs(summary[key] - probe.metrics[2]["entropy_probe/mean_entropy"]) < 1e-9
        assert any(k.endswith("entropy_probe/seconds") for k in summary)
    finally: wandb.finish()
    assert sorted(tmp_path.rglob("offline-run-*/run-*.wandb"))
