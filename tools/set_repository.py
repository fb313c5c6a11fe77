"""Copy the repository address from pyproject.toml into every file that needs its own copy.

The address is written once, in pyproject.toml's ``[project.urls] Repository``. The places that use
it cannot read that file, so each holds a copy:

- every chapter's setup cell, ``%pip install -q "vqvae_lib @ git+<address>"`` (how Colab gets the library);
- every chapter's "Open in Colab" link, ``colab.research.google.com/github/<owner>/<name>/blob/...``;
- ``_config.yml``'s ``repository: url:`` (the site's repository and Colab buttons).

``python tools/set_repository.py`` rewrites every such copy that differs, in ``_config.yml``,
``README.md`` and both halves of every chapter pair (``chapters/*.md``, ``chapters/*.ipynb``) and of every
solutions pair (``solutions/*.md``, ``solutions/*.ipynb``), and
prints what it changed. A copy is found by its place (the three patterns below), not by the old
address, so a copy left stale by an earlier edit is found too, and a repository the text merely
cites is never touched. The replacement is plain text: the notebook's JSON holds the address as a
plain substring, so the two halves of a pair change alike and stay in sync without jupytext.

``--check`` changes nothing and exits 1 naming each file with a copy that differs (the unit test
``tests/test_repository_address.py`` fails in the same case). The address must be on GitHub,
because Colab opens a notebook by its GitHub owner and name. Standard library only.
"""

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GITHUB = "https://github.com/"
REPO = r"(?P<repo>[\w-]+/[\w-]+(?:\.[\w-]+)*)"  # owner/name; a sentence's closing full stop stays out
PLACES = [  # each pattern ends with the copy's owner/name
    re.compile(r"git\+https://github\.com/" + REPO),  # setup cells
    re.compile(r"colab\.research\.google\.com/github/" + REPO),  # Colab links
    re.compile(r"^repository:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+url:[ \t]*https://github\.com/" + REPO, re.M),  # _config.yml
]


def address(root: Path = ROOT) -> str:
    """The address, as pyproject.toml writes it."""
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def files(root: Path = ROOT) -> list[Path]:
    notebooks = [path for folder in ("chapters", "solutions") for pattern in ("*.md", "*.ipynb")
                 for path in sorted((root / folder).glob(pattern))]
    return [root / "_config.yml", root / "README.md", *notebooks]


def copies(text: str) -> list[str]:
    """The owner/name of every copy of the address in ``text``."""
    return [m["repo"] for pattern in PLACES for m in pattern.finditer(text)]


def rewrite(text: str, repo: str) -> str:
    """``text`` with every copy's owner/name replaced by ``repo``."""
    for pattern in PLACES:
        text = pattern.sub(lambda m: m[0][: m.start("repo") - m.start()] + repo, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a copy differs")
    args = parser.parse_args(argv)
    url = address()
    match = re.fullmatch(re.escape(GITHUB) + REPO, url)
    if match is None:
        sys.exit(f"pyproject.toml: Repository must read {GITHUB}<owner>/<name> (Colab opens notebooks "
                 f"from GitHub), not {url!r}")
    stale = []
    for path in files():
        text = path.read_text(encoding="utf-8")
        old = sorted({GITHUB + repo for repo in copies(text) if repo != match["repo"]})
        if old:
            stale.append(path)
            if not args.check:
                path.write_text(rewrite(text, match["repo"]), encoding="utf-8")
            print(f"{path.relative_to(ROOT)}: {', '.join(old)}" + ("" if args.check else f" -> {url}"))
    if args.check and stale:
        print(f"{len(stale)} file(s) hold another address than pyproject.toml's {url}: "
              "run `python tools/set_repository.py`")
        return 1
    if not stale:
        print(f"every copy reads {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
