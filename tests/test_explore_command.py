"End to end: `reasoning-entropy explore --run_dir R` serves R's notebook with JupyterLab, answers on the URL it prints, stops on a signal."
import getpass, queue, re, signal, socket, subprocess, threading, time, urllib.error, urllib.request
from pathlib import Path
import pytest
from helpers import cli, cli_popen


@pytest.fixture
def tiny_run(tmp_path):
    "A synthetic run of 3 prompts and 2 checkpoints (no model: it is made in a second)."
    from reasoning_entropy.testing import synthetic_run_dir
    return synthetic_run_dir(tmp_path / "run", n_prompts=3, models=["A", "B"], max_steps=6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _lab_env(tmp_path) -> dict:
    "Jupyter's config and runtime folders of this test only (the user's settings play no part)."
    return {"JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}


def _lines(stream) -> queue.Queue:
    "The lines of `stream`, read in a thread (None at its end), to wait on with a timeout."
    q = queue.Queue()
    def pump():
        for line in stream: q.put(line)
        q.put(None)
    threading.Thread(target=pump, daemon=True).start()
    return q


def _read_until(q: queue.Queue, n: int, timeout: float) -> list:
    "The first `n` lines of `q` (fewer if the stream ends), waiting at most `timeout` s in all."
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n:
        try: line = q.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty: break
        if line is None: break
        out.append(line)
    return out


def test_explore_serves_the_run_and_stops(tiny_run, tmp_path):
    from reasoning_entropy.lab import port_free
    port = free_port()
    # the user's own log level (INFO): the terminal still shows only what explore prints
    proc = cli_popen("explore", "--run_dir", tiny_run, "--no-browser", "--port", port, log_level=None, env=_lab_env(tmp_path),
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _lines(proc.stdout)
        out = _read_until(lines, 4, timeout=120)
        assert len(out) == 4, (out, proc.poll(), (tiny_run / ".explore.log").read_text()[-3000:])
        assert out[0] == f"JupyterLab serves the run {tiny_run} (its log: .explore.log there); Ctrl-C stops it. Open:\n", out
        m = re.fullmatch(rf"http://localhost:{port}/lab/tree/explore\.ipynb\?token=([0-9a-f]{{48}})\n", out[1])
        assert m, out[1]
        assert out[2] == f"From a laptop: ssh -N -L {port}:localhost:{port} {getpass.getuser()}@{socket.gethostname()}\n", out[2]
        assert out[3] == "then open the URL above in the laptop's browser (the tunnel runs until Ctrl-C there).\n", out[3]
        with urllib.request.urlopen(out[1].strip(), timeout=30) as r:       # the URL as printed: JupyterLab's page
            assert r.status == 200 and r.geturl() == out[1].strip(), (r.status, r.geturl())
            assert b"JupyterLab" in r.read()
        with urllib.request.urlopen(f"http://localhost:{port}/lab/tree/explore.ipynb?token=wrong", timeout=30) as r:
            assert "/login" in r.geturl(), r.geturl()                       # the token is what lets one in
        with urllib.request.urlopen(f"http://localhost:{port}/api/contents/explore.ipynb?token={m[1]}", timeout=30) as r:
            assert r.status == 200                                          # the notebook it serves is the run's
        nb = (tiny_run / "explore.ipynb").read_text()
        assert f"run_dir = '{tiny_run}'" in nb and "Explorer(run_dir)" in nb and "reasoning-entropy report --run_dir" in nb
        assert not port_free(port)
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(20)
    finally:
        if proc.poll() is None: proc.kill()
    err = proc.stderr.read()
    assert status == 143, (status, err)
    assert err == "reasoning-entropy explore: stopped by SIGTERM; JupyterLab is shut down\n", err   # nothing else: no log, no warning
    assert _read_until(lines, 100, timeout=5) == []                          # nothing more on stdout either
    assert port_free(port)                                                   # JupyterLab is gone with it
    assert "Kernel is running over TCP" not in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_explore_stopped_while_starting(tiny_run, tmp_path, sig):
    "Ctrl-C (or the SSH session closing) before JupyterLab answers: it is shut down all the same, exit 128 + the signal as for every command, no URL."
    from reasoning_entropy.lab import port_free
    port = free_port()
    proc = cli_popen("explore", "--run_dir", tiny_run, "--no-browser", "--port", port, env=_lab_env(tmp_path),
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tiny_run / ".explore.log").exists() and proc.poll() is None and time.monotonic() < deadline: time.sleep(0.05)
        assert (tiny_run / ".explore.log").exists(), proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None: proc.kill()
    assert (proc.returncode, out, err) == (128 + sig, "", f"reasoning-entropy explore: stopped by {sig.name}; JupyterLab is shut down\n")
    assert port_free(port)


def test_explore_bad_input(tmp_path, tiny_run, capsys):
    "Not a run, or a taken port: one line, exit 2, nothing written (the command line in a subprocess once, then in-process)."
    from reasoning_entropy.cli import main
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.mkdir()
    r = cli("explore", "--run_dir", missing, "--no-browser")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"reasoning-entropy explore: error: --run_dir {missing}: not a run directory (no run_manifest.json)\n")
    assert not missing.exists()

    def explore(*args):
        capsys.readouterr()
        status = main(["--log_level", "WARNING", "explore", *map(str, args)])
        return (status, *capsys.readouterr())
    assert explore("--run_dir", empty) == (2, "", f"reasoning-entropy explore: error: --run_dir {empty}: not a run directory (no run_manifest.json)\n")
    assert list(empty.iterdir()) == []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); s.listen(); busy = s.getsockname()[1]
        assert explore("--run_dir", tiny_run, "--port", busy) == (
            2, "", f"reasoning-entropy explore: error: --port {busy}: in use on localhost: choose another, or leave --port out for a free one\n")
    assert explore("--run_dir", tiny_run, "--port", 70000) == (2, "", "reasoning-entropy explore: error: --port: must be an integer from 1 to 65535, got 70000\n")
    assert not (tiny_run / "explore.ipynb").exists() and not (tiny_run / ".explore.log").exists()


def test_explore_without_jupyterlab(tiny_run, monkeypatch, capsys):
    "JupyterLab is a dev requirement: without it, one line with the install command, exit 2, nothing written."
    import shlex, sys
    from reasoning_entropy.cli import main
    monkeypatch.setitem(sys.modules, "jupyterlab", None)                   # not importable here
    status = main(["--log_level", "WARNING", "explore", "--run_dir", str(tiny_run)])
    want = f"reasoning-entropy explore: error: explore needs jupyterlab in this Python environment: {shlex.quote(sys.executable)} -m pip install jupyterlab\n"
    assert (status, *capsys.readouterr()) == (2, "", want)
    assert not (tiny_run / "explore.ipynb").exists()


def test_explore_lab_fails_to_start(tiny_run, monkeypatch, capsys):
    "JupyterLab that exits while starting: one line naming its log, exit 1; its own output is in that log, not on the terminal."
    import sys
    from reasoning_entropy import lab
    from reasoning_entropy.cli import main
    monkeypatch.setattr(lab, "lab_command", lambda *a, **k: [sys.executable, "-c", "import sys; print('no jupyterlab here', file=sys.stderr); sys.exit(3)"])
    status = main(["--log_level", "WARNING", "explore", "--run_dir", str(tiny_run), "--no-browser"])
    log = tiny_run / ".explore.log"
    assert (status, *capsys.readouterr()) == (1, "", f"reasoning-entropy explore: error: JupyterLab stopped while starting (exit 3): see its log {log}\n")
    assert log.read_text() == "no jupyterlab here\n"
    assert (tiny_run / "explore.ipynb").exists()
