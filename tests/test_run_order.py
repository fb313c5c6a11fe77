"""The order in which ``pytest`` hands notebooks to its two workers (conftest.py, "Chapter 07 after Chapter 10, its solutions last")."""

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")  # not tests/conftest.py
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)


def test_chapter_07_runs_after_chapter_10_and_its_solutions_last_with_their_cells_in_order():
    files = ["tests/test_a.py", "chapters/06_prior.ipynb", "chapters/07_bits_per_dim.ipynb",
             "chapters/07_learning_rates.ipynb", "chapters/10_going_further.ipynb", "solutions/06_prior.ipynb",
             "solutions/07_bits_per_dim.ipynb", "solutions/07_learning_rates.ipynb", "solutions/10_going_further.ipynb"]
    items = [SimpleNamespace(nodeid=f"{f}::Cell {k}") for f in files for k in range(3)]
    conftest.pytest_collection_modifyitems(items)
    order = list(dict.fromkeys(item.nodeid.split("::")[0] for item in items))
    assert order == ["tests/test_a.py", "chapters/06_prior.ipynb", "chapters/07_learning_rates.ipynb",
                     "chapters/10_going_further.ipynb", "chapters/07_bits_per_dim.ipynb", "solutions/06_prior.ipynb",
                     "solutions/10_going_further.ipynb", "solutions/07_bits_per_dim.ipynb",
                     "solutions/07_learning_rates.ipynb"]
    assert [item.nodeid for item in items if item.nodeid.startswith("chapters/07_bits")] == \
        [f"chapters/07_bits_per_dim.ipynb::Cell {k}" for k in range(3)]


def test_the_chapters_run_before_chapter_07_load_no_other_chapters_models_or_results():
    """What makes the move safe: Chapters 08-10 cache and load only their own models and results, and the
    learning-rate page, now also ahead of Chapter 07, only Chapter 07's."""
    for page in ("07_learning_rates", "08_audio", "09_video", "10_going_further"):
        text = (ROOT / "chapters" / f"{page}.md").read_text()
        prefixes = set(re.findall(r"""f?["'](ch\d\d)""", text))
        assert prefixes == {f"ch{page[:2]}"}, f"{page} loads {sorted(prefixes)}"
        results = set(re.findall(r"results/(\d\d)_", text))
        assert results <= {page[:2]}, f"{page} reads the results of chapters {sorted(results)}"
