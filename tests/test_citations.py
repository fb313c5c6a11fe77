"""Citations read the same in JupyterLab, Colab and on the site, and each one matches references.bib.

MyST roles such as ``{cite}`` are rendered only by Jupyter Book; JupyterLab and Colab show them as raw
text. So the chapters cite with plain Markdown links, "[van den Oord et al., 2017](https://arxiv.org/abs/1711.00937)"
(or "[van den Oord et al. (2017)](…)" inside a sentence), and these tests hold every such link to its
bibliography entry: the link, the first author's surname and the year must all agree.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")) + sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
# "[Name et al., 2017](url)" or "[Name and Other (2017)](url)"; the name may wrap onto the next line.
CITATION = re.compile(r"\[(?P<names>[^\]\[]*?)(?:, | \()(?P<year>\d{4})\)?\]\((?P<url>[^)\s]+)\)")
ROLE = re.compile(r"\{[a-z:-]+\}`")


def bibliography(text):
    """{url: (first author's surname, year)} for every entry of a .bib file with a url or doi."""
    entries = {}
    for body in re.findall(r"@\w+\{\w+,(.*?)\n\}", text, re.S):
        fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*?)\},?\s*$", body, re.M))
        surname = re.sub(r"[{}\\'\"]", "", fields["author"].split(",")[0]).strip()
        url = fields.get("url") or (f"https://doi.org/{fields['doi']}" if "doi" in fields else None)
        if url:
            entries[url] = (surname, fields["year"])
    return entries


def markdown(notebook):
    """The text a reader sees in JupyterLab or Colab: the notebook's Markdown cells."""
    cells = json.loads(notebook.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def citation_errors(text, entries):
    errors = []
    for m in CITATION.finditer(text):
        names = " ".join(m["names"].split())
        if m["url"] not in entries:
            if re.search(r"et al\.|\band\b", names) or m["url"].startswith(("https://arxiv.org", "https://doi.org")):
                errors.append(f"{m[0]!r}: no entry in references.bib has this url")
            continue
        surname, year = entries[m["url"]]
        if not names.startswith(surname) or year != m["year"]:
            errors.append(f"{m[0]!r}: references.bib says {surname} ({year})")
    return errors


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_myst_roles_in_the_text_jupyterlab_and_colab_show(notebook):
    roles = ROLE.findall(markdown(notebook))
    assert not roles, f"{notebook.name}: MyST roles {roles} show as raw text outside Jupyter Book; write a link"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_citation_matches_its_bibliography_entry(notebook):
    entries = bibliography((ROOT / "references.bib").read_text())
    assert entries, "references.bib parsed to nothing"
    assert not citation_errors(markdown(notebook), entries)


def test_the_check_catches_a_wrong_year_a_wrong_name_and_an_unknown_paper():
    entries = bibliography((ROOT / "references.bib").read_text())
    good = "[van den Oord et al., 2017](https://arxiv.org/abs/1711.00937) and [Bengio et al.\n(2013)](https://arxiv.org/abs/1308.3432)"
    assert citation_errors(good, entries) == []
    for bad in ["[van den Oord et al., 2016](https://arxiv.org/abs/1711.00937)",
                "[Kingma et al., 2017](https://arxiv.org/abs/1711.00937)",
                "[Someone et al., 2020](https://arxiv.org/abs/2001.00001)"]:
        assert len(citation_errors(bad, entries)) == 1, bad


def test_the_bibliography_page_lists_every_entry():
    page = (ROOT / "chapters" / "references.md").read_text()
    assert re.search(r"```\{bibliography\}\n:all:\n```", page), "no chapter uses {cite}; the page must list :all:"
