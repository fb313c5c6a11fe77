"""The shared figures draw on the Agg backend, with labelled axes, and reject bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vqvae_lib.plot import plot_history, show_images  # noqa: E402
from vqvae_lib.train import History  # noqa: E402


def test_show_images_draws_one_grid_of_the_images():
    images = torch.zeros(10, 1, 28, 28)
    images[3] = 1.0
    ax = show_images(images, nrow=5, title="ten")
    grid = ax.images[0].get_array()
    assert grid.shape[:2] == (2 * 28 + 3 * 2, 5 * 28 + 6 * 2)  # make_grid with 2-pixel padding
    assert ax.get_title() == "ten" and grid.max() == 1.0
    plt.close(ax.figure)


def test_show_images_rejects_a_single_image():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        show_images(torch.zeros(1, 28, 28))


def test_plot_history_draws_train_and_test_curves_with_labels():
    history = History(train=[{"step": s, "loss": 1.0 / s} for s in range(1, 11)],
                      test=[{"step": 5, "loss": 0.3}, {"step": 10, "loss": 0.2}])
    ax = plot_history(history, scale=2.0, ylabel="bits / dim")
    train_line, test_line = ax.get_lines()
    assert list(train_line.get_ydata()) == [2.0 / s for s in range(1, 11)]
    assert list(test_line.get_xdata()) == [5, 10] and list(test_line.get_ydata()) == [0.6, 0.4]
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "bits / dim"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train loss", "test loss"]
    plt.close(ax.figure)
