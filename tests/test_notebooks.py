"""The chapters' structural promises: pairs in sync, one setup cell, executed, listed in the TOC.

The worked solutions (``solutions/NN_slug``, issue 27) are notebooks of the same kind and keep the same
promises; each links from its chapter's Exercises section."""

import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import jupytext
import pytest
import yaml

from vqvae_lib.vqvae import VQVAEConfig

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
ALL_NOTEBOOKS = NOTEBOOKS + SOLUTIONS
IGNORE = "# NBVAL_IGNORE_OUTPUT"


def code_cells(path):
    cells = json.loads(path.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code"]


def source(cell):
    return "".join(cell["source"])


def test_there_are_chapters():
    assert [p.name[:2] for p in NOTEBOOKS][:2] == ["00", "01"]


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_text_pair_is_in_sync(notebook):
    """Regenerate the MyST text file from the notebook and diff (``jupytext --sync`` trusts timestamps).
    jupytext's own API in this process: what ``jupytext --to md:myst`` writes, without a 3 s interpreter start."""
    pair = notebook.with_suffix(".md")
    assert pair.is_file(), f"{pair.name} is missing: run `jupytext --sync {notebook.name}`"
    assert json.loads(notebook.read_text())["metadata"]["jupytext"]["formats"] == "ipynb,md:myst"
    regenerated = jupytext.writes(jupytext.read(notebook), fmt="md:myst")
    # The header records which jupytext wrote the file; a newer jupytext in a fresh venv is not a change.
    version = re.compile(r"^    jupytext_version: .*$", re.M)
    assert version.sub("", regenerated) == version.sub("", pair.read_text()), \
        f"{pair.name} differs from {notebook.name}: re-pair them"


def test_every_chapter_opens_with_the_same_setup_cell():
    setups = {source(code_cells(nb)[0]) for nb in ALL_NOTEBOOKS}
    assert len(setups) == 1, "the first code cell must be identical in every chapter and solutions notebook"
    assert "setup(seed=0)" in setups.pop()


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_one_parameters_cell_and_asserted_ignored_cells(notebook):
    cells = code_cells(notebook)
    assert sum(source(c).startswith("# Parameters") for c in cells) == 1
    for cell in cells[1:]:
        text = source(cell)
        if text.startswith(IGNORE):
            assert re.search(r"^\s*assert ", text, re.M), f"an output-ignored cell must assert its promise:\n{text}"


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stored_outputs_are_complete_and_error_free(notebook):
    for cell in code_cells(notebook):
        if source(cell).strip():
            assert cell["execution_count"] is not None, f"unexecuted cell:\n{source(cell)[:200]}"
        assert not [o for o in cell["outputs"] if o["output_type"] == "error"]


def test_toc_lists_every_chapter_by_its_ipynb():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = [toc["root"]] + [c["file"] for part in toc.get("parts", [toc]) for c in part.get("chapters", [])]
    for nb in ALL_NOTEBOOKS:
        assert f"{nb.parent.name}/{nb.name}" in listed


@pytest.mark.parametrize("solutions", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_restate_their_chapters_settings_and_are_linked_from_it(solutions):
    """A solutions notebook loads its chapter's cached models only if it restates the chapter's settings
    exactly (a silent difference would retrain them); its chapter's Exercises section links to it."""
    chapter = ROOT / "chapters" / solutions.name
    for profile in ("fast", "full"):
        ours = dict(parameters_of(solutions, profile))
        theirs = parameters_of(chapter, profile)
        shared = sorted(set(ours) & set(theirs) - {"PROFILE", "FAST", "__builtins__"})
        assert shared, f"{solutions.name} restates none of its chapter's settings"
        differ = [name for name in shared if not callable(theirs[name]) and ours[name] != theirs[name]]
        assert not differ, f"{solutions.name} ({profile}) gives other values to {differ} than its chapter"
    exercises = chapter.with_suffix(".md").read_text().split("## Exercises", 1)[1].split("\n## ", 1)[0]
    assert f"(../solutions/{solutions.with_suffix('.md').name})" in exercises, \
        f"{chapter.name}'s Exercises section does not link to its solutions"


def parameters_of(notebook, profile):
    """The names a notebook's parameters cell defines, for ``PROFILE = profile``."""
    cell = next(c for c in code_cells(notebook) if source(c).startswith("# Parameters"))
    # Chapters 08 and 09 set their CPU threads when `device.type == "cpu"`: a device that is not the CPU
    # keeps this test process's threads as they are.
    names = {"PROFILE": profile, "device": SimpleNamespace(type="not the cpu")}
    exec(source(cell), names)
    return names


def parameters(prefix, profile):
    """The names a chapter's parameters cell defines, for ``PROFILE = profile``."""
    return parameters_of(next(p for p in NOTEBOOKS if p.name.startswith(prefix)), profile)


@pytest.mark.parametrize("profile", ["fast", "full"])
def test_later_chapters_restate_earlier_settings_exactly(profile):
    """Chapters 02, 04, 06 and 07 reuse earlier checkpoints only if their configs equal the training chapters'."""
    ch = {prefix: parameters(prefix, profile) for prefix in ("01", "02", "04", "06", "07")}
    assert ch["07"]["DATASET"] == "fashion_mnist", "the stored run is the Fashion-MNIST comparison"
    run = lambda c, size, epochs, lr, batch: dict(train_size=c[size], epochs=c[epochs], lr=c[lr], batch_size=c[batch])
    for c in ("02", "04"):  # they load Chapter 01's VAE for reference
        assert ch[c]["CH01_VAE"] == ch["01"]["VAE_CONFIG"]
        assert run(ch[c], "CH01_TRAIN_SIZE", "CH01_EPOCHS", "CH01_LR", "BATCH_SIZE") \
            == run(ch["01"], "TRAIN_SIZE", "EPOCHS", "LR", "BATCH_SIZE")
    models = ch["07"]["MODELS"]
    assert models["vae"] == (ch["01"]["VAE_CONFIG"], run(ch["01"], "TRAIN_SIZE", "EPOCHS", "LR", "BATCH_SIZE"))
    for kind in ch["07"]["ESTIMATORS"]:
        assert models[kind] == (replace(ch["02"]["CATEGORICAL"], estimator=kind),
                                run(ch["02"], "TRAIN_SIZE", "EPOCHS", "LR", "BATCH_SIZE"))
    assert models["vqvae"][0] == ch["06"]["CH04_CONFIG"] == ch["04"]["VQVAE_CONFIG"]
    assert models["vqvae"][1] == run(ch["04"], "TRAIN_SIZE", "EPOCHS", "LR", "BATCH_SIZE") \
        == run(ch["06"], "CH04_TRAIN_SIZE", "CH04_EPOCHS", "CH04_LR", "BATCH_SIZE")
    assert models["prior"][0] == ch["06"]["PRIOR_CONFIG"]
    assert models["prior"][1] == dict(run(ch["06"], "CH04_TRAIN_SIZE", "PRIOR_EPOCHS", "PRIOR_LR", "BATCH_SIZE"),
                                      train_size=None)  # the prior trains on the codes of the VQ-VAE's data
    assert ch["06"]["TEST_SIZE"] == ch["07"]["TEST_SIZE"] == ch["04"]["TEST_SIZE"] == ch["02"]["TEST_SIZE"] == ch["01"]["TEST_SIZE"]


@pytest.mark.parametrize("profile", ["fast", "full"])
@pytest.mark.parametrize("page", ["06_prior", "07_bits_per_dim"])
def test_solutions_restate_chapter_05s_model_exactly(page, profile):
    """Solutions 06 (Exercise 3) and 07 (Exercise 1) load Chapter 05's EMA + restarts model only if they build
    and train it as Chapter 05 does."""
    ours, theirs = parameters_of(ROOT / "solutions" / f"{page}.ipynb", profile), parameters("05", profile)
    assert (ours["CH05_TRAIN_SIZE"], ours["CH05_TEST_SIZE"], ours["CH05_EPOCHS"], ours["CH05_LR"]) \
        == (theirs["TRAIN_SIZE"], theirs["TEST_SIZE"], theirs["EPOCHS"], theirs["LR"])
    assert theirs["BATCH_SIZE"] == 128, "the solutions build Chapter 05's loaders with batch 128"
    assert ours["CH05_CONFIG"] == VQVAEConfig(
        num_codes=theirs["NUM_CODES"], code_dim=theirs["CODE_DIM"], hidden=theirs["HIDDEN"],
        res_hidden=theirs["RES_HIDDEN"], beta=theirs["BETA"], decay=theirs["DECAY"], quantizer="ema",
        restart_after=theirs["RESTART_AFTER"])


@pytest.mark.parametrize("profile", ["fast", "full"])
def test_solutions_7a_fits_chapter_07s_prior(profile):
    """Solutions 7a, Exercise 2, fits to each candidate's codes the prior Chapter 07 fits to its discrete rows."""
    ours, theirs = parameters_of(ROOT / "solutions" / "07_learning_rates.ipynb", profile), parameters("07_bits", profile)
    assert (ours["EQUAL_PRIOR"], ours["EQUAL_PRIOR_LR"]) == (theirs["EQUAL_PRIOR"], theirs["EQUAL_PRIOR_LR"])


def test_no_numbered_equation_is_wrapped_where_mathjax_refuses_tag():
    """Sphinx wraps a displayed equation that contains ``\\\\`` in ``split`` (and one with blank lines in
    ``aligned``); MathJax then renders ``\\tag`` as an error. Use ``\\cr`` inside ``cases`` instead."""
    bad = []
    for md in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.md")) + sorted((ROOT / "solutions").glob("[0-9][0-9]_*.md")):
        text = md.read_text()
        for match in re.finditer(r"\$\$(.*?)\$\$", text, re.S):
            body = match.group(1)
            if "\\tag" in body and ("\\\\" in body or re.search(r"\n\s*\n", body.strip())):
                bad.append(f"{md.name}:{text[:match.start()].count(chr(10)) + 1}")
    assert not bad, bad


def test_every_notebook_mutant_still_finds_its_cell_and_text():
    """The mutants of ``tests/notebook_mutants.py`` (wrong answers the solutions' asserts were seen to catch) still
    point at one cell and one piece of its code each, so that a page's edit cannot silently retire them; every
    exercise of every solutions page that has an assert has at least one mutant."""
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("notebook_mutants", ROOT / "tests" / "notebook_mutants.py")
    harness = module_from_spec(spec)
    spec.loader.exec_module(harness)
    harness.check(harness.load_mutants())
    covered = {(m["page"], m["exercise"]) for m in harness.load_mutants()}
    for path in SOLUTIONS:
        text = path.with_suffix(".md").read_text()
        for number, body in re.findall(r"^## Exercise (\d+)\b(.*?)(?=^## |\Z)", text, flags=re.M | re.S):
            if re.search(r"^\s*assert ", body, flags=re.M):
                assert (path.stem, f"Ex {number}") in covered, f"{path.stem} Exercise {number} has an assert and no mutant"
