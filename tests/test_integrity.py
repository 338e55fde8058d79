"Integrity and repair through the command line: `verify`, and `compare`/`score` repairing a corrupt or missing part (issue 27, items 1-2)."
import json, shutil
import pandas as pd
import pytest

from reasoning_entropy.store import RunStore
from helpers import cli

ARGS = ["--num_examples", 4, "--max_new_tokens", 8, "--batch_size", 2]


def compare_args(pair, out):
    a, b = pair
    return ["compare", "--model_paths", a, b, "--model_names", "A", "B", *ARGS, "--output_dir", out]


@pytest.fixture(scope="module")
def ref(tiny_pair, tmp_path_factory):
    "An uninterrupted run of two tiny checkpoints (2 parts each), compared and scored."
    out = tmp_path_factory.mktemp("integrity") / "ref"
    cli(*compare_args(tiny_pair, out), check=True)
    cli("score", "--run_dir", out, check=True)
    return out


@pytest.fixture
def run(ref, tmp_path):
    "A copy of the reference run to damage."
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    return out


def outputs(out):
    "The run's CSV files (bytes), its token rows sorted by key, its scored rows sorted by key."
    st = RunStore(out)
    files = {p.name: p.read_bytes() for p in sorted(out.glob("*.csv"))}
    key = ["model", "prompt_id", "sample", "step"]
    tok = st.read_tokens().sort_values(key).reset_index(drop=True)
    sc = st.read_scored().sort_values(key).reset_index(drop=True)
    return files, tok, sc


def same_outputs(a, b):
    fa, ta, sa = outputs(a)
    fb, tb, sb = outputs(b)
    assert sorted(fa) == sorted(fb) and [n for n in fa if fa[n] != fb[n]] == []
    pd.testing.assert_frame_equal(ta, tb)
    pd.testing.assert_frame_equal(sa, sb)


def warnings(stderr):
    return [l for l in stderr.splitlines() if " WARNING " in l]


def test_verify_sound_run(ref):
    r = cli("verify", "--run_dir", ref)
    assert r.returncode == 0, r.stderr[-2000:]
    # 2 checkpoints x 2 batches x (tokens + generations) + 2 scored parts + the prompts file
    assert r.stdout.splitlines() == ["verified 11 parts of 2 checkpoints: sound"]


def test_cut_token_part_repaired_by_compare(tiny_pair, ref, run):
    part = run / "data/tokens/model=A/part-00001.parquet"
    size = part.stat().st_size
    cut = part.read_bytes()[: size // 2]
    part.write_bytes(cut)
    r = cli(*compare_args(tiny_pair, run))
    assert r.returncode == 0, r.stderr[-2000:]
    w = warnings(r.stderr)
    assert len(w) == 1, r.stderr
    assert w[0].endswith(f"part data/tokens/model=A/part-00001.parquet is corrupt (size {size // 2}, recorded {size}): "
                         "moved to quarantine/data/tokens/model=A/part-00001.parquet with its pair; its units will be regenerated")
    q = run / "quarantine/data"
    assert (q / "tokens/model=A/part-00001.parquet").read_bytes() == cut and (q / "generations/model=A/part-00001.parquet").exists()
    same_outputs(ref, run)
    assert cli("verify", "--run_dir", run).returncode == 0


def test_deleted_part_repaired_by_compare(tiny_pair, ref, run):
    (run / "data/generations/model=B/part-00000.parquet").unlink()
    r = cli(*compare_args(tiny_pair, run))
    assert r.returncode == 0, r.stderr[-2000:]
    w = warnings(r.stderr)
    assert len(w) == 1, r.stderr
    assert w[0].endswith("part data/generations/model=B/part-00000.parquet is missing: its pair moved to "
                         "quarantine/data/tokens/model=B/part-00000.parquet; its units will be regenerated")
    same_outputs(ref, run)
    assert cli("verify", "--run_dir", run).returncode == 0


def test_flipped_byte_found_by_verify_then_repaired(tiny_pair, ref, run):
    part = run / "data/tokens/model=B/part-00001.parquet"
    b = bytearray(part.read_bytes()); b[len(b) // 2] ^= 0xFF; part.write_bytes(bytes(b))
    r = cli("verify", "--run_dir", run)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{part}: checksum differs from the ledger (sha256 "), r.stdout
    assert lines[1] == "verified 11 parts of 2 checkpoints: 1 problem"
    r = cli(*compare_args(tiny_pair, run))
    assert r.returncode == 0, r.stderr[-2000:]
    w = warnings(r.stderr)
    assert len(w) == 1 and w[0].endswith("part data/tokens/model=B/part-00001.parquet is corrupt (its checksum differs from the record, "
                                         "as verify found): moved to quarantine/data/tokens/model=B/part-00001.parquet with its pair; "
                                         "its units will be regenerated"), r.stderr
    same_outputs(ref, run)
    r = cli("verify", "--run_dir", run)
    assert (r.returncode, r.stdout.splitlines()) == (0, ["verified 11 parts of 2 checkpoints: sound"])


def test_corrupt_scored_part_repaired_by_score(ref, run):
    part = run / "data/scored/model=B/part-00000.parquet"
    size = part.stat().st_size
    part.write_bytes(part.read_bytes()[:100])
    r = cli("score", "--run_dir", run)
    assert r.returncode == 0, r.stderr[-2000:]
    w = warnings(r.stderr)
    assert len(w) == 1 and w[0].endswith(f"part data/scored/model=B/part-00000.parquet is corrupt (size 100, recorded {size}): "
                                         "moved to quarantine/data/scored/model=B/part-00000.parquet; B will be scored again"), r.stderr
    assert (run / "quarantine/data/scored/model=B/part-00000.parquet").stat().st_size == 100
    same_outputs(ref, run)
    assert cli("verify", "--run_dir", run).returncode == 0


@pytest.mark.parametrize("command", ["compare", "score", "report", "verify"])
def test_unparsable_manifest_stops_every_command(tiny_pair, run, command):
    m = run / "run_manifest.json"
    m.write_text('{"format": 2,')
    args = compare_args(tiny_pair, run) if command == "compare" else [command, "--run_dir", run]
    r = cli(*args, log_level=None)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0] == (f"reasoning-entropy {command}: error: {m}: cannot be parsed (Expecting property name enclosed in double quotes: line 1 column 14 (char 13)): "
                        "fix or move it; it was not changed")
    assert m.read_text() == '{"format": 2,'


# `report --run_dir` repairs the run before the template reads it (issue 27, item 2), and reads a sound run without the lock.

def kit_warnings(stderr):
    "The warning lines of the kit (not those of the Jupyter kernel papermill starts)."
    return [l for l in warnings(stderr) if not l.startswith("[IPKernelApp]")]


def run_files(out):
    "{path relative to the run: bytes} of every file of the run."
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def tables(out):
    "The report's tables, with the run's own path taken out, and without the timings (which a regeneration changes)."
    read = lambda p: pd.read_csv(p) if p.read_bytes().strip() else pd.DataFrame()  # a table with no columns: an empty line
    return {p.name: read(p).replace(str(out), "RUN", regex=True).drop(columns=["seconds", "tokens/s"], errors="ignore")
            for p in sorted((out / "tables").glob("*.csv"))}


@pytest.fixture(scope="module")
def reported(ref, tmp_path_factory):
    "A copy of the reference run reported while this process holds its lock: (the run, its manifest and ledger before, the report's result)."
    from reasoning_entropy.runlock import RunLock
    out = tmp_path_factory.mktemp("reported") / "run"
    shutil.copytree(ref, out)
    m, led = out / "run_manifest.json", out / "data/ledger.jsonl"
    before = (m.read_bytes(), m.stat().st_mtime_ns, led.read_bytes())
    lock = RunLock(out).acquire()  # another writer: a report of a sound, complete run reads it all the same
    try: r = cli("report", "--run_dir", out)
    finally: lock.release()
    return out, before, r


def test_report_of_sound_run_writes_no_run_data(reported):
    out, before, r = reported
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == [f"report: {out / 'report.html'}"] and kit_warnings(r.stderr) == []
    m, led = out / "run_manifest.json", out / "data/ledger.jsonl"
    assert (m.read_bytes(), m.stat().st_mtime_ns, led.read_bytes()) == before
    assert not (out / "quarantine").exists() and len(tables(out)) > 10


def cut_part(run, rel="data/tokens/model=A/part-00000.parquet"):
    "Cut the part `rel` of `run` to half its size; return (its path, its size before, the bytes left)."
    part = run / rel
    size = part.stat().st_size
    part.write_bytes(part.read_bytes()[: size // 2])
    return part, size, part.read_bytes()


def test_report_repairs_a_cut_token_part(reported, run):
    part, size, cut = cut_part(run)
    r = cli("report", "--run_dir", run)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == [f"report: {run / 'report.html'}"]
    w = kit_warnings(r.stderr)
    assert len(w) == 1 and w[0].endswith(f"part data/tokens/model=A/part-00000.parquet is corrupt (size {size // 2}, recorded {size}): moved to "
                                         "quarantine/data/tokens/model=A/part-00000.parquet with its pair; its units will be regenerated"), r.stderr
    q = run / "quarantine/data"
    assert (q / "tokens/model=A/part-00000.parquet").read_bytes() == cut and (q / "generations/model=A/part-00000.parquet").exists()
    want, got = tables(reported[0]), tables(run)
    assert sorted(got) == sorted(want)
    for name in want: pd.testing.assert_frame_equal(got[name], want[name], check_exact=False, rtol=1e-12, obj=name)
    same_outputs(reported[0], run)
    assert cli("verify", "--run_dir", run).returncode == 0


def test_report_stops_when_lost_units_need_checkpoints_not_here(tiny_pair, run, tmp_path):
    before = run_files(run)
    part, size, cut = cut_part(run)
    away = tmp_path / "away"; away.mkdir()
    for c in tiny_pair: c.rename(away / c.name)
    try: r = cli("report", "--run_dir", run)
    finally:
        for c in tiny_pair: (away / c.name).rename(c)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].endswith(f"part data/tokens/model=A/part-00000.parquet is corrupt (size {size // 2}, recorded {size}): moved to "
                             "quarantine/data/tokens/model=A/part-00000.parquet with its pair; its units will be regenerated")
    assert lines[1] == (f"reasoning-entropy report: error: --run_dir {run}: A lost the units of quarantine/data/generations/model=A/part-00000.parquet, "
                        "quarantine/data/tokens/model=A/part-00000.parquet; regenerating them needs checkpoints not reachable from here "
                        f"(A: {tiny_pair[0].resolve()}): run the compare that made the run where they are")
    after = run_files(run)
    moved = ["data/tokens/model=A/part-00000.parquet", "data/generations/model=A/part-00000.parquet"]
    assert after.pop("quarantine/" + moved[0]) == cut and after.pop("quarantine/" + moved[1]) == before[moved[1]]
    changed = sorted(set(before) ^ set(after) | {f for f in before.keys() & after.keys() if before[f] != after[f]})
    assert changed == sorted(moved + ["data/ledger.jsonl", "run_manifest.json"])  # the pair moved, its records dropped, A incomplete
    assert not RunStore(run).is_complete(["A"]) and RunStore(run).is_complete(["B"])


def test_report_of_damaged_run_being_written_stops_with_the_lock_line(run):
    import os
    from reasoning_entropy.runlock import RunLock
    part, size, cut = cut_part(run)
    lock = RunLock(run).acquire()
    try: r = cli("report", "--run_dir", run)
    finally: lock.release()
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"reasoning-entropy report: error: {run} is being written by PID {os.getpid()} on host ")
    assert lines[0].endswith("; wait for it, or pass --wait")
    assert part.read_bytes() == cut and not (run / "quarantine").exists()
