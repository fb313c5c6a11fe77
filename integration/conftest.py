"""Shared fixtures of the integration tests: Debian's Chromium driven by Playwright, and a folder for
the screenshots.

These tests are run by ``.ci/run`` after the book build (``pytest integration/``), not by the plain
``pytest`` of the README: they need Chromium (``apt-get install chromium``), a built site and a few
minutes. Playwright's own browser download is not used; it drives the system Chromium.
"""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def screenshots():
    """``_build/screenshots`` (or ``$VQVAE_SCREENSHOTS``); CI prints its path."""
    folder = Path(os.environ.get("VQVAE_SCREENSHOTS") or ROOT / "_build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium from the system package, launched by Playwright."""
    executable = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("no Chromium on PATH: install Debian's package (`apt-get install chromium`) "
                    "or point $CHROMIUM at a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()
