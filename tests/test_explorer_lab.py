"End to end: JupyterLab on localhost, the demo explorer notebook run in headless Chromium, its views driven and checked."
import json, os, re, shutil, socket, subprocess, sys, time, urllib.request, secrets
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
MODELS = ["Checkpoint_1", "Checkpoint_2", "Checkpoint_10"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _scored_run(run):
    "Give a synthetic run scored sequences: every checkpoint scores Checkpoint_1's tokens (entropy scaled 1, 0.7, 0.4)."
    import pandas as pd
    from reasoning_entropy.store import RunStore
    st = RunStore(run)
    t = pd.read_parquet(st.tokens_dir); t["model"] = t.model.astype(str)
    ref = t[t.model == MODELS[0]].drop(columns="model")
    for i, m in enumerate(MODELS):
        d = st.scored_dir / f"model={m}"; d.mkdir(parents=True)
        ref.assign(entropy=ref.entropy * (1 - 0.3 * i), probability=ref.probability ** (1 + i)).to_parquet(d / "part-00000.parquet", index=False)
    st.save_scoring_state({"sequences": MODELS[0], "top_k_alternatives": 5, "done": {}})


@pytest.fixture
def lab(chromium, tmp_path):
    from reasoning_entropy.testing import synthetic_run_dir
    run = synthetic_run_dir(tmp_path / "run", n_prompts=12, models=MODELS, max_steps=14)
    _scored_run(run)
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


def _idle(page):
    page.wait_for_timeout(400)
    page.get_by_text("| Idle").first.wait_for()                             # every callback has run


def test_explorer_in_jupyterlab(lab):
    import pandas as pd
    from playwright.sync_api import sync_playwright
    from reasoning_entropy.store import RunStore
    ARTIFACTS.mkdir(exist_ok=True)
    st = RunStore(lab["run"])
    plr = pd.read_csv(st.legacy_path("prompt_level_results.csv"), dtype={"prompt_id": str})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=lab["chromium"], args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{lab['url']}/lab/tree/explore_demo.ipynb?token={lab['token']}")
        page.wait_for_selector(".jp-Notebook", state="visible")
        page.get_by_text("| Idle").first.wait_for(timeout=90_000)          # the kernel is up
        no = page.get_by_role("button", name="No", exact=True)             # JupyterLab's news prompt would cover the views
        if no.count(): no.first.click()
        page.locator(".jp-CodeCell .jp-InputArea-editor").first.click()
        page.keyboard.press("Shift+Enter")                                  # run the cell
        heat = page.locator(".re-heatmap").first
        try: heat.wait_for(state="visible", timeout=120_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "explorer-failed.png"), full_page=True); raise
        assert "prompt 0" in heat.inner_text()
        assert page.locator(".re-heatmap .re-tok").count() > 0
        # the prompt control: the token view and the prompt's text follow
        select = page.locator(".re-w-prompt select").first
        select.select_option(value=select.locator("option").nth(3).get_attribute("value"))
        page.wait_for_function("() => document.querySelector('.re-heatmap').innerText.includes('prompt 3')")
        assert "prompt 0" not in page.locator(".re-heatmap").first.inner_text()
        assert "What is 3 + 3" in page.locator(".re-prompt").first.inner_text()
        # the checkpoints control: fewer columns, a new curve
        src = page.locator(".re-w-plot").first.get_attribute("src")
        page.locator(".re-w-models select").first.select_option(["Checkpoint_10"])
        page.wait_for_function("() => document.querySelectorAll('.re-heatmap th').length === 1")
        page.wait_for_function("s => document.querySelector('.re-w-plot').getAttribute('src') !== s", arg=src)
        _idle(page)
        page.locator(".re-w-plot").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
        page.locator(".re-w-models select").first.select_option(MODELS)
        _idle(page)

        # the prompt table: "wrong at Checkpoint_1, right at Checkpoint_10" keeps exactly those prompts
        ok = plr.assign(c=plr.correct.astype(str) == "True").pivot_table(index="prompt_id", columns="model", values="c", aggfunc="first")
        want = sorted(ok.index[~ok.Checkpoint_1 & ok.Checkpoint_10], key=int)
        assert want, "the synthetic run has prompts wrong at Checkpoint_1 and right at Checkpoint_10"
        page.locator(".re-w-wrong select").first.select_option(label="Checkpoint_1")
        page.locator(".re-w-right select").first.select_option(label="Checkpoint_10")
        page.wait_for_function("n => document.querySelector('.re-count').innerText.startsWith(n + ' of 12')", arg=len(want))
        page.wait_for_function("n => document.querySelectorAll('.re-prompt-table select option').length === n", arg=len(want))
        opts = page.locator(".re-prompt-table select option")
        shown = [t.split("│")[0].strip() for t in opts.all_inner_texts()]
        assert shown == want, (shown, want)
        page.locator(".re-prompt-table select").first.select_option(index=len(want) - 1)   # a row opens its prompt
        page.wait_for_function("p => document.querySelector('.re-heatmap').innerText.includes('prompt ' + p)", arg=want[-1])
        _idle(page)
        page.locator(".re-prompt-table").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "explorer-prompt-table.png"))

        # the Δ view: its baseline and target are exactly the "Δ from / to" choices, the sequence is named
        page.locator(".re-w-metric button", has_text="delta_entropy").first.click()
        page.wait_for_selector(".re-aligned-view")
        page.locator(".re-w-from select").first.select_option("Checkpoint_2")
        page.wait_for_function("() => document.querySelector('.re-caption').innerText.includes('entropy of Checkpoint_2 (baseline)')")
        page.locator(".re-w-to select").first.select_option("Checkpoint_10")
        page.locator(".re-w-models select").first.select_option(["Checkpoint_10", "Checkpoint_2"])  # deselecting Checkpoint_1 keeps the baseline
        _idle(page)
        view = page.locator(".re-aligned-view").first
        cap = view.locator(".re-caption").inner_text()
        assert "Checkpoint_1's generation" in cap and "scored by each checkpoint" in cap and "target Checkpoint_10" in cap, cap
        keys = view.locator(".re-key span").all_inner_texts()[1:]
        assert keys == ["Checkpoint_2 (baseline)", "Checkpoint_10 (target)"], keys
        assert "✓ correct" not in view.inner_text().replace("its answer: ✓ correct", "")
        view.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "explorer-delta-view.png"))

        # the pinned panel: click a position; the explorer's panel shows every checkpoint there, equal to the scored rows
        col = view.locator(".re-col[data-s='4']").first
        col.click()
        page.wait_for_selector(".re-panel")
        page.mouse.move(5, 5)                                               # it stays without the pointer
        tip = page.locator(".re-panel").first.inner_text()
        assert tip.startswith("step 4:"), tip
        pid = page.locator(".re-prompt summary").first.inner_text().split()[1].rstrip(":")
        assert pid == want[-1], (pid, want)                                 # still the prompt the table opened
        sc = pd.read_parquet(st.scored_dir, filters=[("prompt_id", "==", pid), ("step", "==", 4)])
        sc["model"] = sc.model.astype(str)
        lines = tip.splitlines()
        assert [l.split(":")[0] for l in lines[1:]] == ["Checkpoint_2", "Checkpoint_10"], lines
        for line in lines[1:]:
            m, rest = line.split(": ", 1)
            r = sc[sc.model == m].iloc[0]
            sc_ = f", self-certainty {r.self_certainty:.4f} nats" if pd.notna(r.get('self_certainty')) else ''
            assert rest.startswith(f"entropy {r.entropy:.4f} nats, probability {r.probability:.4f}, rank {int(r['rank'])}{sc_}; top: "), (line, r)
        page.locator(".re-panel").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "explorer-pinned-panel.png"))
        browser.close()
    for f in ("explorer.png", "explorer-prompt-table.png", "explorer-delta-view.png", "explorer-pinned-panel.png"):
        assert (ARTIFACTS / f).stat().st_size > 10_000, f


def test_long_paragraph_wraps(chromium, tmp_path):
    "A 1,000-token paragraph (no newline) renders no wider than its 1,280 px window, as a heatmap and aligned."
    import numpy as np, pandas as pd
    from playwright.sync_api import sync_playwright
    from reasoning_entropy.explorer import token_heatmap, aligned_view
    rng = np.random.default_rng(0)
    words = [" the", " answer", " is", " therefore", " 12", ",", " because", " supercalifragilisticexpialidocious"]
    n = 1000
    t = pd.concat([pd.DataFrame({"model": m, "prompt_id": "0", "step": np.arange(1, n + 1), "token_id": rng.integers(0, 8, n),
                                 "entropy": rng.gamma(1, 1, n), "probability": rng.random(n), "rank": 1,
                                 "top_ids": [[1, 2]] * n, "top_logprobs": [[-0.1, -2.5]] * n}) for m in ("A", "B")])
    t["next_token"] = [words[i] for i in t.token_id]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name, html in (("heatmap", token_heatmap(t, models=["A", "B"], highlight_quantile=0.9, standalone=True)),
                           ("aligned", f"<!DOCTYPE html><html><body>{aligned_view(t, 'entropy', models=['A', 'B'])}</body></html>")):
            page.set_content(html)
            width = page.evaluate("() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
            assert width <= 1280, (name, width)
            assert page.evaluate("() => document.querySelector('.re-heatmap').getBoundingClientRect().height") > 200, name  # it wrapped
            page.screenshot(path=str(ARTIFACTS / f"wrap-{name}-1000-tokens.png"))
        browser.close()
