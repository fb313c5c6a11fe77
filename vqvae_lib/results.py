"""The numbers a chapter's prose relies on, written beside the notebook by its full-profile run.

A chapter ends its comparisons with ``save_results("results/07_bits_per_dim.json", {...}, PROFILE)``.
``tests/test_claims.py`` then holds the chapter's Markdown to that file: every "mean ± sd" typed in
the prose must be one of the file's entries, to the printed precision. A number that no run produced
fails CI. The fast profile trains too little for its numbers to mean anything, so it writes nothing.

An entry is either a list of per-seed (or per-run) values, whose mean and sample standard deviation
(``statistics.stdev``, n - 1) the test computes, or ``{"mean": m, "sd": s}`` for a spread the chapter
computed itself (for example a standard error over episodes), or a plain number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def _check(key: str, value) -> None:
    if isinstance(value, dict):
        if set(value) != {"mean", "sd"}:
            raise ValueError(f"results entry {key!r}: a dict must have exactly the keys 'mean' and 'sd', "
                             f"got {sorted(value)}")
        values = list(value.values())
    elif isinstance(value, (list, tuple)):
        if len(value) < 2:
            raise ValueError(f"results entry {key!r}: a list holds per-seed values (at least 2 for an sd), "
                             f"got {len(value)}; store a single number as a plain float")
        values = list(value)
    else:
        values = [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"results entry {key!r}: expected finite numbers, got {v!r}; convert tensors "
                             "with float(...) or .tolist()")


def save_results(path: str | Path, results: dict, profile: str) -> Path | None:
    """Write ``results`` as JSON to ``path`` in the full profile; in the fast profile write nothing.

    Keys are names; values are numbers, lists of per-seed numbers, or ``{"mean", "sd"}`` dicts.
    Returns the path written, or ``None`` in the fast profile.
    """
    if profile not in ("full", "fast"):
        raise ValueError(f"profile must be 'full' or 'fast' (vqvae_lib.runtime.get_profile()), got {profile!r}")
    if not isinstance(results, dict) or not results:
        raise ValueError("results must be a non-empty dict of name -> number, list or {'mean', 'sd'}")
    for key, value in results.items():
        _check(str(key), value)
    if profile == "fast":
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1, sort_keys=True) + "\n")
    return path
