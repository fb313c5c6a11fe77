import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vqvae_lib import train


class Quadratic(nn.Module):
    """A model with a ``loss`` method whose minimum is known: w = 3."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def loss(self, x):
        loss = ((self.w - 3.0) ** 2).sum() + 0 * x.sum()
        return {"loss": loss, "w": self.w.sum()}


class MeanOfInputs(nn.Module):
    """loss = the batch mean of x: its dataset average depends on how batches are weighted."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def loss(self, x):
        return {"loss": x.mean() + 0 * self.w.sum()}


def loader(n=16):
    return DataLoader(TensorDataset(torch.zeros(n, 1), torch.zeros(n)), batch_size=4)


def test_fit_minimises_loss_and_records_history(capsys):
    model = Quadratic()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    history = train.fit(model, loader(), epochs=3, test_loader=loader(4), optimizer=sgd)
    assert [r["step"] for r in history.train] == list(range(1, 13))
    assert [r["epoch"] for r in history.test] == [1, 2, 3]
    assert history.train[-1]["loss"] < 0.1 * history.train[0]["loss"]
    assert "epoch 3/3" in capsys.readouterr().out


def test_fit_needs_a_learning_rate_or_an_optimizer():
    with pytest.raises(ValueError, match="give lr"):
        train.fit(Quadratic(), loader(), epochs=1)


def test_fit_logs_every_metric_as_a_float():
    history = train.fit(Quadratic(), loader(), epochs=1, lr=0.1)
    row = history.train[0]
    assert set(row) == {"step", "loss", "w"} and all(isinstance(row[k], float) for k in ("loss", "w"))
    assert row["loss"] == pytest.approx(9.0) and row["w"] == 0.0


def test_evaluate_weights_each_batch_by_its_size():
    # 10 examples in batches of 4, 4, 2 with values 0..9: the example mean is 4.5, while the mean
    # of the three batch means (1.5, 5.5, 8.5) would be 5.1667
    data = DataLoader(TensorDataset(torch.arange(10.0).unsqueeze(1), torch.zeros(10)), batch_size=4)
    assert train.evaluate(MeanOfInputs(), data)["loss"] == pytest.approx(4.5)


class Conditional(Quadratic):
    conditional = True

    def loss(self, x, y):
        loss = ((self.w - y.float().mean()) ** 2).sum() + 0 * x.sum()
        return {"loss": loss}


def test_conditional_models_receive_the_labels():
    labelled = DataLoader(TensorDataset(torch.zeros(16, 1), torch.full((16,), 2)), batch_size=4)
    model = Conditional()
    train.fit(model, labelled, epochs=20, lr=0.1)
    assert abs(model.w.item() - 2.0) < 0.05
    assert train.evaluate(model, labelled)["loss"] < 1e-2
    unlabelled = DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=4)
    unlabelled_plain = DataLoader(torch.zeros(4, 1), batch_size=4)
    with pytest.raises(ValueError, match="needs \\(x, labels\\) batches"):
        train.evaluate(model, unlabelled_plain)
    with pytest.raises(ValueError, match="labels"):
        train.evaluate(model, unlabelled)


@pytest.mark.parametrize("env, disabled", [(None, False), ("1", True), ("0", False)])
def test_fit_passes_tqdms_disable_switch_to_the_bar_by_hand(monkeypatch, env, disabled):
    """``tqdm.notebook`` forces ``disable=False`` over ``TQDM_DISABLE``; ``fit`` must pass the switch itself."""
    from tqdm.notebook import tqdm as notebook_tqdm

    bars = []

    class Recorder(notebook_tqdm):
        def __init__(self, *args, **kwargs):
            bars.append(kwargs)
            super().__init__(*args, **{**kwargs, "display": False})

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    if env is not None:
        monkeypatch.setenv("TQDM_DISABLE", env)
    monkeypatch.setattr(train, "tqdm", Recorder)
    train.fit(Quadratic(), loader(), epochs=1, lr=0.1)
    assert len(bars) == 1 and bars[0].get("disable") is disabled


def test_bf16_autocast_trains_and_keeps_the_ema_codebook_fp32():
    from vqvae_lib.vqvae import VQVAE, VQVAEConfig

    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(num_codes=16, code_dim=4, hidden=8, res_hidden=4, quantizer="ema"))
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(64)), batch_size=16)
    history = train.fit(model, loader, epochs=3, lr=3e-3, amp="bf16")
    assert history.train[-1]["loss"] < history.train[0]["loss"]
    assert model.quantizer.codebook.dtype == torch.float32


@pytest.mark.parametrize("amp, message", [("fp16", "needs a CUDA model.*bf16"), (True, "needs a CUDA model"),
                                          ("fp8", "amp must be"), (1, "amp must be")])
def test_an_amp_this_device_cannot_do_is_refused(amp, message):
    with pytest.raises(ValueError, match=message):
        train.autocast_dtype(amp, torch.device("cpu"))


@pytest.mark.parametrize("log_every", [1, 3, 50])
def test_reading_metrics_back_in_groups_records_every_step_the_same(log_every):
    from vqvae_lib.vqvae import VQVAE, VQVAEConfig

    histories = []
    for every in (1, log_every):
        torch.manual_seed(0)
        model = VQVAE(VQVAEConfig(num_codes=8, code_dim=4, hidden=8, res_hidden=4))
        x = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        loader = DataLoader(TensorDataset(x, torch.zeros(40)), batch_size=8)
        histories.append(train.fit(model, loader, epochs=2, lr=1e-3, test_loader=loader, log_every=every))
    assert histories[0].train == histories[1].train and len(histories[1].train) == 10
    assert [row["step"] for row in histories[1].train] == list(range(1, 11))
    assert histories[0].test == histories[1].test and histories[1].test[-1]["step"] == 10


def test_evaluate_restores_training_mode_even_when_the_loss_raises():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def loss(self, x):
            raise RuntimeError("a bug in the model")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="a bug"):
        train.evaluate(model, DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=2))
    assert model.training, "an exception left the model in eval mode"
