"""Chapter 07's main table trains at the rates its learning-rate page chose, on the same terms.

Seed 0 of each row of Chapter 07's table is the very run that ``chapters/07_learning_rates`` scored on
held-out images: both notebooks build it from the same settings, so the checkpoint cache hands it over.
A silent difference would make Chapter 07 train another model at a rate chosen for a different one.
"""

import pytest

from test_notebooks import NOTEBOOKS, parameters_of

SHARED = ("DATASET", "EQUAL_TRAIN", "EQUAL_VALIDATION", "EQUAL_EPOCHS", "EQUAL_BATCH", "EQUAL_STEPS", "EQUAL_K", "EQUAL")


def notebook(stem):
    return next(p for p in NOTEBOOKS if p.stem == stem)


@pytest.mark.parametrize("profile", ["fast", "full"])
def test_chapter_07_restates_the_learning_rate_pages_settings(profile):
    page = parameters_of(notebook("07_learning_rates"), profile)
    chapter = parameters_of(notebook("07_bits_per_dim"), profile)
    differ = [name for name in SHARED if page[name] != chapter[name]]
    assert not differ, f"Chapter 07 ({profile}) gives other values to {differ} than its learning-rate page"
    assert set(chapter["EQUAL"]) == {"vae", "vimco", "st_gumbel", "vqvae"}


def test_the_search_starts_on_its_ladder():
    page = parameters_of(notebook("07_learning_rates"), "full")
    assert set(page["SEARCH_START"]) <= set(page["SEARCH_LADDER"])
    assert list(page["SEARCH_LADDER"]) == sorted(page["SEARCH_LADDER"])
