"""The built site, page by page, in headless Chromium.

Run after ``jupyter-book build . -W``. A local HTTP server serves ``_build/html``; every page is
loaded and must show:

- typeset math: each page whose HTML holds ``$``-math (Sphinx's ``.math`` elements) has MathJax output
  and no ``mjx-merror`` (a TeX error MathJax shows instead of the formula);
- loaded images: every ``<img>`` has a natural width above zero;
- a quiet console: no console errors and no uncaught page errors;
- working links: every internal link points at a page of the build and, where it has ``#anchor``, at
  an element with that id;
- no request leaving the machine: anything not addressed to the local server is aborted and reported.

One screenshot per chapter is kept. ``test_the_checks_catch_a_broken_page`` breaks a copy of a real
page in each of those ways and checks that every breakage is reported.
"""

import functools
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]

BUILD = ROOT / "_build" / "html"
SKIP = ("_static", "_sources", "_images", "_sphinx_design_static")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def built():
    if not (BUILD / "index.html").is_file():
        pytest.fail(f"no built site in {BUILD}: run `jupyter-book build . -W` first")
    return BUILD


def serve(folder):
    """A local HTTP server on a free port for ``folder``; returns (server, base URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def pages_of(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*.html") if not p.relative_to(folder).parts[0] in SKIP)


def check_page(context, base, folder, relpath, screenshot=None):
    """Load one page and return the list of problems found on it (empty: the page is fine)."""
    problems = []
    redirect = re.search(r'http-equiv="refresh" content="\d+; ?url=([^"]+)"', (folder / relpath).read_text(), re.I)
    if redirect:  # index.html only forwards to the first chapter; check where it points
        if not (folder / relpath).parent.joinpath(urldefrag(redirect[1])[0]).is_file():
            problems.append(f"redirect to a missing page: {redirect[1]}")
        return problems
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def route(r):
        if r.request.url.startswith(base + "/") or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            problems.append(f"request leaves the machine: {r.request.url}")
            r.abort()

    page.route("**/*", route)
    page.goto(f"{base}/{relpath.as_posix()}", wait_until="load")
    # Images below the fold may be lazy: make them load now, then wait for every one to settle.
    page.evaluate("""async () => {
        for (const img of document.images) img.loading = 'eager';
        await Promise.all(Array.from(document.images).map(img => img.complete ? null :
            new Promise(done => { img.onload = img.onerror = done; })));
    }""")
    broken = page.evaluate("Array.from(document.images).filter(i => i.naturalWidth === 0).map(i => i.getAttribute('src'))")
    problems += [f"image not loaded: {src}" for src in broken]

    if page.locator(".math").count():
        typeset = page.evaluate("""async () => {
            if (!window.MathJax || !MathJax.startup) return false;
            await MathJax.startup.promise;
            return true;
        }""")
        if not typeset:
            problems.append("math on the page but MathJax did not start")
        raw = page.evaluate("Array.from(document.querySelectorAll('.math'))"
                            ".filter(m => !m.querySelector('mjx-container')).map(m => m.textContent)")
        problems += [f"math not typeset (unbalanced braces?): {tex[:80]}" for tex in raw]
        for error in page.locator("mjx-merror").all():
            problems.append(f"MathJax error: {error.get_attribute('data-mjx-error') or error.inner_text()}")

    for href in page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
        if not href.startswith(base + "/"):
            continue
        target, anchor = urldefrag(href)
        path = folder / unquote(urlsplit(target).path).lstrip("/")
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            problems.append(f"dead link: {href}")
        elif anchor and path.suffix == ".html" and not re.search(
                rf"""\bid=["']{re.escape(unquote(anchor))}["']""", path.read_text(errors="replace")):
            problems.append(f"missing anchor: {href}")
    if screenshot is not None:
        page.screenshot(path=screenshot)
    page.close()
    return problems


def test_every_page_of_the_site(chromium, built, screenshots):
    server, base = serve(built)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        pages = pages_of(built)
        assert len([p for p in pages if p.parts[0] == "chapters"]) >= 9, pages
        report = {}
        for relpath in pages:
            shot = screenshots / f"site-{relpath.stem}.png" if relpath.parts[0] == "chapters" else None
            problems = check_page(context, base, built, relpath, shot)
            if problems:
                report[str(relpath)] = problems
        assert not report, "\n".join(f"{page}: {p}" for page, ps in report.items() for p in ps)
    finally:
        context.close()
        server.shutdown()


def test_the_checks_catch_a_broken_page(chromium, built, tmp_path):
    """A copy of a real chapter with a missing image, a TeX typo, a dead link, a missing anchor and
    a remote image: each must be reported."""
    site = tmp_path / "site"
    shutil.copytree(built, site, symlinks=True, copy_function=lambda src, dst: Path(dst).symlink_to(src))
    page_path = site / "chapters" / "01_vae.html"
    html = Path(page_path.resolve()).read_text()
    page_path.unlink()
    assert "<img" in html and 'class="math' in html
    html = re.sub(r'(<img[^>]*src=")([^"]+)"', r'\1../_images/no-such-figure.png"', html, count=1)
    html = re.sub(r"\\\(.+?\\\)", r"\\(\\frac{a}{b\\)", html, count=1)  # unbalanced: MathJax leaves it raw
    html = re.sub(r"\\\((?!\\frac\{a\}\{b\\\)).+?\\\)", r"\\(\\frac{a}\\)", html, count=1)  # a TeX error
    html = html.replace("</article>", '<a href="no-such-page.html">x</a><a href="00_preface.html#no-such-anchor">y</a>'
                        '<img src="https://example.com/badge.svg"></article>', 1)
    page_path.write_text(html)
    server, base = serve(site)
    context = chromium.new_context()
    try:
        problems = "\n".join(check_page(context, base, site, Path("chapters/01_vae.html")))
    finally:
        context.close()
        server.shutdown()
    for expected in ["image not loaded: ../_images/no-such-figure.png", "math not typeset", "MathJax error",
                     "dead link: ", "missing anchor: ", "request leaves the machine: https://example.com/badge.svg"]:
        assert expected in problems, f"not caught: {expected}\n{problems}"
