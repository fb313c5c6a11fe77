"""A reader's first minutes in JupyterLab, in a real browser.

The test starts ``jupyter lab`` on 127.0.0.1 with a fixed token, opens Chapter 00, clears its
outputs, runs the setup cell through the UI and waits for the line the setup cell prints. Then it
opens ``chapters/01_vae.md`` with "Open With → Jupytext Notebook" and checks that a notebook with
code cells appears. The server serves a copy of ``chapters/`` so that nothing the browser does (an
autosave, a cleared output) can touch the stored notebooks; user settings live in a temporary
folder, so the repository's overrides (``jupyter/lab-settings/vqvae-book.json``) are what apply.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TOKEN = "vqvae-book-test"
SETUP_LINE = re.compile(r"device=\w+ profile=(\w+) seed=0")
WAIT_MS = 120_000  # a cold kernel importing torch on a busy 2-core machine


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the chapters; yields its base URL, and leaves no process behind."""
    home = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "chapters", home / "chapters", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(ROOT / "jupytext.toml", home / "jupytext.toml")
    settings = home / "user-settings"
    docmanager = settings / "@jupyterlab" / "docmanager-extension"
    docmanager.mkdir(parents=True)
    (docmanager / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
    port = free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(home / "ws"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), VQVAE_FAST="1")
    log = open(home / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={home}"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI machines run as root
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, f"jupyter lab exited: {(home / 'server.log').read_text()[-2000:]}"
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "jupyter lab did not answer within 90 s"
                time.sleep(1)
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


@pytest.fixture
def page(chromium, lab):
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


def test_the_setup_cell_runs_in_jupyterlab(page, lab, screenshots):
    page.goto(f"{lab}/lab/tree/chapters/00_preface.ipynb?token={TOKEN}&reset")
    setup_cell = page.locator(".jp-CodeCell").filter(has_text="setup(seed=0)").first
    setup_cell.wait_for()
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    page.screenshot(path=screenshots / "jupyterlab-00-opened.png")

    page.get_by_role("menuitem", name="Edit").click()
    page.get_by_text("Clear Outputs of All Cells").click()
    assert not SETUP_LINE.search(setup_cell.inner_text()), "the stored output was not cleared"

    setup_cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    # "[ ]:" becomes "[1]:" when the cell has finished, whether it printed the line or raised.
    setup_cell.locator(".jp-InputPrompt").filter(has_text=re.compile(r"\[\d+\]")).wait_for()
    output = setup_cell.locator(".jp-OutputArea-output")
    page.screenshot(path=screenshots / "jupyterlab-00-setup-cell-ran.png")
    printed = output.all_inner_texts()
    assert any(SETUP_LINE.search(text) for text in printed), f"the setup cell printed {printed}"
    assert SETUP_LINE.search(" ".join(printed))[1] == "fast"  # the kernel sees the server's VQVAE_FAST=1
    assert not page.locator(".jp-Notification-Toast").filter(has_text="news").count(), "the news pop-up is on"


def test_a_chapter_md_opens_as_a_notebook(page, lab, screenshots):
    page.goto(f"{lab}/lab/tree/chapters?token={TOKEN}&reset")
    entry = page.locator(".jp-DirListing-item").filter(has_text="01_vae.md")
    entry.click(button="right")
    page.get_by_text("Open With").hover()
    page.get_by_role("menuitem", name="Jupytext Notebook").click()
    notebook = page.locator(".jp-NotebookPanel").filter(has=page.locator(".jp-CodeCell")).last
    notebook.wait_for()
    notebook.locator("h1").first.wait_for()  # the first Markdown cell, rendered
    page.get_by_role("tab", name=re.compile("01_vae.md")).wait_for()
    assert notebook.locator(".jp-MarkdownCell").count() >= 1  # JupyterLab renders only the cells in view
    assert notebook.locator(".jp-CodeCell").filter(has_text="setup(seed=0)").count() == 1
    page.screenshot(path=screenshots / "jupyterlab-01_vae-md-as-notebook.png")
