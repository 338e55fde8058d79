"The package works outside the repository: build the wheel, install it in a separate venv, use it from elsewhere."
import subprocess, sys, sysconfig, os, textwrap
from pathlib import Path
import pytest

from reasoning_entropy.store import RunStore
from helpers import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pkg")
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
                   check=True, cwd=tmp)
    whl, = dist.glob("reasoning_entropy-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    # the dependencies come from this interpreter's site-packages, as a plain path (its .pth files, and so
    # the editable install of the checkout, are not processed)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(whl)], check=True)
    return py, whl


def test_wheel_installs_and_loader_runs_elsewhere(wheel_venv, tmp_path):
    py, whl = wheel_venv
    code = textwrap.dedent("""
        import reasoning_entropy, json
        from reasoning_entropy.data import load_prompts, sample_data_path
        ps = load_prompts(num_examples=5)
        print(json.dumps({"file": reasoning_entropy.__file__, "n": len(ps), "ids": [p.prompt_id for p in ps],
                          "sample": str(sample_data_path()), "has_answer": all(p.reference_answer for p in ps)}))
    """)
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert r.returncode == 0, r.stderr
    import json
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert str(py.parent.parent) in out["file"], out["file"]        # the installed copy, not the checkout
    assert str(ROOT) not in out["file"]
    assert out["n"] == 5 and out["ids"] == ["0", "1", "2", "3", "4"] and out["has_answer"]
    assert str(py.parent.parent) in out["sample"]


def test_wheel_ships_package_data_and_console_script(wheel_venv):
    import zipfile
    py, whl = wheel_venv
    names = zipfile.ZipFile(whl).namelist()
    assert "reasoning_entropy/data/sample_reasoning.jsonl" in names
    assert "reasoning_entropy/templates/comparison_report.ipynb" in names   # the report runs from an installed wheel
    assert "reasoning_entropy/cli.py" in names and "reasoning_entropy/__main__.py" in names
    ep = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(whl).read(ep[0]).decode()
    assert "reasoning-entropy = reasoning_entropy.cli:console" in text
    r = cli("--version", log_level=None, prefix=[py], cwd="/")
    assert r.returncode == 0 and r.stdout.startswith("reasoning-entropy ")


def test_report_runs_from_the_installed_wheel(wheel_venv, tmp_path):
    "compare + score + papermill report, all from the installed package (its template, its kernel), outside the checkout."
    py, _ = wheel_venv
    code = textwrap.dedent("""
        from reasoning_entropy.testing import make_tiny_checkpoint
        make_tiny_checkpoint('c1', seed=1); make_tiny_checkpoint('c2', seed=2)
    """)
    # the dependencies' data files (nbconvert's templates) sit under the interpreter that installed them, as
    # they would in a real install of the wheel's dependencies
    env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1", "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter")}
    assert subprocess.run([str(py), "-c", code], cwd=tmp_path, env=env).returncode == 0
    r = cli("report", "--model_paths", "c1", "c2", "--model_names", "A", "B", "--num_examples", "3", "--max_new_tokens", "6",
            "--output_dir", "run", prefix=[py], env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    import json
    st = RunStore(tmp_path / "run")
    nb = json.loads(st.report_notebook.read_text())
    assert str(py.parent.parent) in nb["metadata"]["papermill"]["input_path"]   # the wheel's template
    html = st.report_html.read_text()
    assert "Token heatmap" in html and html.count("data:image/png;base64,") >= 13
