"""The prose's numbers are the runs' numbers (issue 25, item 15).

A chapter's full-profile run writes the numbers its comparisons rest on to
``chapters/results/<chapter>.json`` (:func:`vqvae_lib.results.save_results`). Here, from files and in
seconds, every "mean ± sd" typed in that chapter's Markdown must equal one entry of some chapter's
results file to the precision printed, so a number typed into the prose that no stored run produced
fails CI. Stored notebooks must also hold no error output.
"""

import json
import re
import statistics
from pathlib import Path

import pytest

from vqvae_lib.results import save_results

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
RESULTS = sorted((CHAPTERS / "results").glob("*.json"))
NUMBER = r"[−-]?\d[\d,]*(?:\.\d+)?"
PAIR = re.compile(rf"(?<![\d.])({NUMBER})\s*±\s*({NUMBER})(?![\d])")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)


def prose(markdown: str) -> str:
    """The Markdown without its fenced blocks (code cells print their own numbers)."""
    return FENCE.sub("", markdown)


def pairs(markdown: str) -> list[tuple[str, str]]:
    """Every "mean ± sd" of the prose, as typed."""
    return PAIR.findall(prose(markdown))


def mean_sd(value):
    if isinstance(value, dict):
        return value["mean"], value["sd"]
    if isinstance(value, list):
        return statistics.mean(value), statistics.stdev(value)
    return None


def as_printed(x: float, like: str) -> str:
    decimals = len(like.split(".")[1]) if "." in like else 0
    text = f"{x:,.{decimals}f}" if "," in like else f"{x:.{decimals}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def normalise(text: str) -> str:
    return text.replace("−", "-")


def matches(pair, entries) -> bool:
    mean_text, sd_text = (normalise(t) for t in pair)
    for value in entries:
        stats = mean_sd(value)
        if stats and as_printed(stats[0], mean_text) == mean_text and as_printed(stats[1], sd_text) == sd_text:
            return True
    return False


def all_entries():
    return [v for path in RESULTS for v in json.loads(path.read_text()).values()]


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_every_mean_and_sd_in_the_prose_is_a_stored_result(path):
    markdown = CHAPTERS / f"{path.stem}.md"
    assert markdown.exists(), f"{path.name} has no chapter {markdown.name}: name results files after their chapter"
    entries = all_entries()
    typed = pairs(markdown.read_text())
    missing = [f"{m} ± {s}" for m, s in typed if not matches((m, s), entries)]
    assert not missing, (f"{markdown.name} types these 'mean ± sd' that no results file holds at the printed "
                         f"precision: {missing}. Re-run the chapter in the full profile and copy the printed numbers, "
                         "or add the entry to its save_results call")


@pytest.mark.parametrize("notebook", sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_the_stored_notebook_has_no_error_output(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    errors = [i for i, cell in enumerate(cells) for out in cell.get("outputs", []) if out["output_type"] == "error"]
    assert not errors, f"{notebook.name}: cells {errors} stored an error; re-run it in the full profile"


def test_the_checker_catches_a_number_edited_in_the_prose():
    entries = [[3.95, 3.97, 3.96], {"mean": -0.5, "sd": 0.11}]
    good = "VAE 3.960 ± 0.010 and a gap of −0.50 ± 0.11 bits.\n```{code-cell}\nprint('9.99 ± 9.99')\n```\n"
    assert all(matches(p, entries) for p in pairs(good)) and len(pairs(good)) == 2
    for bad in ("VAE 3.961 ± 0.010", "VAE 3.960 ± 0.011", "a gap of 0.50 ± 0.11", "VAE 3.96 ± 0.02"):
        assert not all(matches(p, entries) for p in pairs(bad)), bad


def test_save_results_writes_in_the_full_profile_only(tmp_path):
    results = {"vae": [3.95, 3.97, 3.96], "gap": {"mean": -0.5, "sd": 0.11}, "steps": 468}
    assert save_results(tmp_path / "fast.json", results, "fast") is None
    assert not (tmp_path / "fast.json").exists()
    written = save_results(tmp_path / "sub" / "full.json", results, "full")
    assert json.loads(written.read_text()) == results


@pytest.mark.parametrize("bad, message", [
    ({"x": [1.0]}, "at least 2"),
    ({"x": {"mean": 1.0}}, "'mean' and 'sd'"),
    ({"x": float("nan")}, "finite"),
    ({"x": "3.9"}, "finite"),
    ({}, "non-empty"),
])
def test_save_results_names_what_is_wrong(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        save_results(tmp_path / "r.json", bad, "full")


def test_save_results_rejects_an_unknown_profile(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        save_results(tmp_path / "r.json", {"x": 1.0}, "quick")
