"""The shared figures draw on the Agg backend, with labelled axes, and reject bad input."""

import base64
import io
import re
import wave

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vqvae_lib.plot import Players, plot_history, show_images, show_log_mel, wav_bytes  # noqa: E402
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


def test_show_log_mel_draws_time_across_and_bands_up():
    features = torch.zeros(64, 100)
    features[0, :] = 1.0  # the lowest band
    ax = show_log_mel(features, title="one clip")
    image = ax.images[0]
    assert image.get_extent() == [0, 1.0, 0, 64] and image.origin == "lower"
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "mel band" and ax.get_title() == "one clip"
    assert image.get_array()[0].min() == 1.0 and image.get_array()[1:].max() == 0.0
    plt.close(ax.figure)


def test_show_log_mel_rejects_a_batch():
    with pytest.raises(ValueError, match=r"\(n_mels, T\)"):
        show_log_mel(torch.zeros(2, 64, 100))


def test_wav_bytes_is_a_16_bit_mono_file_scaled_to_a_peak_of_0_9():
    x = torch.tensor([0.0, 0.25, -0.5, 0.1])
    with wave.open(io.BytesIO(wav_bytes(x, 8000)), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 8000, 4)
        samples = np.frombuffer(w.readframes(4), dtype="<i2")
    assert samples.tolist() == [0, round(0.45 * 32767), round(-0.9 * 32767), round(0.18 * 32767)]
    with wave.open(io.BytesIO(wav_bytes(torch.zeros(3), 8000)), "rb") as w:
        assert w.readframes(3) == bytes(6)  # silence is not divided by zero
    with pytest.raises(ValueError, match=r"\(L,\)"):
        wav_bytes(torch.zeros(2, 3), 8000)


def test_players_inline_every_clip_as_a_wav_in_a_labelled_table():
    clips = [torch.full((80,), 0.1 * (i + 1)) for i in range(4)]
    page = Players({"real": clips[:2], "<decoded>": clips[2:]}, ["a", "b"], 8000)._repr_html_()
    sources = re.findall(r'src="data:audio/wav;base64,([^"]+)"', page)
    assert [base64.b64decode(s) for s in sources] == [wav_bytes(c, 8000) for c in clips]
    assert "<th>&lt;decoded&gt;</th>" in page and page.count("<tr>") == 3
    with pytest.raises(ValueError, match="2 columns"):
        Players({"short": clips[:1]}, ["a", "b"], 8000)
