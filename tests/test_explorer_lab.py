"End to end: JupyterLab on localhost, the demo explorer notebook run in headless Chromium, a control changed."
import os, shutil, socket, subprocess, sys, time, urllib.request, secrets
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture
def lab(chromium, tmp_path):
    from reasoning_entropy.testing import synthetic_run_dir
    run = synthetic_run_dir(tmp_path / "run", n_prompts=12, models=["Checkpoint_1", "Checkpoint_2", "Checkpoint_10"], max_steps=14)
    shutil.copy(ROOT / "nbs" / "explore_demo.ipynb", tmp_path / "explore_demo.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "REASONING_ENTROPY_EXPLORE_RUN": str(run), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip", "127.0.0.1", "--port", str(port),
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.open_browser=False",
                             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2); break
        except Exception:
            if proc.poll() is not None: break
            time.sleep(0.5)
    else:
        proc.kill(); pytest.fail("JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-2000:])
    assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
    yield dict(url=url, token=token, chromium=chromium, run=run)
    proc.terminate()
    try: proc.wait(10)
    except subprocess.TimeoutExpired: proc.kill()


def test_explorer_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=lab["chromium"], args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{lab['url']}/lab/tree/explore_demo.ipynb?token={lab['token']}")
        page.wait_for_selector(".jp-Notebook", state="visible")
        page.get_by_text("| Idle").first.wait_for(timeout=90_000)          # the kernel is up
        page.locator(".jp-CodeCell .jp-InputArea-editor").first.click()
        page.keyboard.press("Shift+Enter")                                  # run the cell
        heat = page.locator(".re-heatmap").first
        try: heat.wait_for(state="visible", timeout=120_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "explorer-failed.png"), full_page=True); raise
        assert "prompt 0" in heat.inner_text()
        n0 = page.locator(".re-heatmap .re-tok").count()
        assert n0 > 0
        # change the prompt control: the token view follows
        select = page.locator(".widget-dropdown select").first
        select.select_option(value=select.locator("option").nth(3).get_attribute("value"))
        page.wait_for_function("() => document.querySelector('.re-heatmap').innerText.includes('prompt 3')")
        assert "prompt 0" not in page.locator(".re-heatmap").first.inner_text()
        # and the checkpoints control: fewer columns, a new curve
        img = page.locator(".widget-image").first
        src = img.get_attribute("src")
        page.locator(".widget-select-multiple select").first.select_option(["Checkpoint_10"])
        page.wait_for_function("() => document.querySelectorAll('.re-heatmap th').length === 1")
        page.wait_for_function("s => document.querySelector('.widget-image').getAttribute('src') !== s", arg=src)
        page.wait_for_timeout(500)
        page.get_by_text("| Idle").first.wait_for()                         # every callback has run
        page.locator(".widget-image").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "explorer.png").stat().st_size > 10_000
