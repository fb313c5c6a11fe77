"""A validation split carved from the training set, for choosing settings without touching the test set.

Chapter 07 chooses each model's learning rate on held-out training images and reports the chosen
runs on the test set, so that no number in its table was used to pick the model it describes.
(This module is not imported by any model, so it does not enter their checkpoint keys.)
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset


def holdout(dataset: Dataset, size: int, seed: int = 0) -> tuple[Subset, Subset]:
    """Split ``dataset`` into ``(rest, held_out)``, ``held_out`` a seeded random ``size`` of its items.

    The two parts are disjoint and together hold every item once; the same seed gives the same split.
    """
    n = len(dataset)
    if not isinstance(size, int) or not 0 < size < n:
        raise ValueError(f"the held-out size must be an int in 1..{n - 1} (the dataset has {n} items), got {size!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[size:])), Subset(dataset, sorted(order[:size]))
