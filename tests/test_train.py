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


def loader(n=16):
    return DataLoader(TensorDataset(torch.zeros(n, 1), torch.zeros(n)), batch_size=4)


def test_fit_minimises_loss_and_records_history(capsys):
    model = Quadratic()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    history = train.fit(model, loader(), epochs=3, lr=0.1, test_loader=loader(4), optimizer=sgd)
    assert [r["step"] for r in history.train] == list(range(1, 13))
    assert [r["epoch"] for r in history.test] == [1, 2, 3]
    assert history.train[-1]["loss"] < 0.1 * history.train[0]["loss"]
    assert "epoch 3/3" in capsys.readouterr().out


def test_evaluate_averages_over_examples():
    model = Quadratic()
    assert train.evaluate(model, loader())["loss"] == 9.0


def test_checkpoint_round_trip_restores_weights_and_history(tmp_path):
    model = Quadratic()
    history = train.fit(model, loader(), epochs=1, lr=0.5)
    path = tmp_path / "ck.pt"
    train.save_checkpoint(path, model, history, {"lr": 0.5})
    fresh = Quadratic()
    restored = train.load_checkpoint(path, fresh)
    assert torch.equal(fresh.w, model.w)
    assert restored.train == history.train and restored.seconds == history.seconds


def test_load_or_fit_trains_once_then_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VQVAE_CHECKPOINTS", str(tmp_path))
    config = {"lr": 0.5, "epochs": 1}
    first = train.load_or_fit(Quadratic(), "quad", config, loader(), epochs=1, lr=0.5)
    second_model = Quadratic()
    second = train.load_or_fit(second_model, "quad", config, loader(), epochs=1, lr=0.5)
    assert "loaded cached checkpoint" in capsys.readouterr().out
    assert second.train == first.train and second_model.w.item() != 0.0
    assert train.checkpoint_path("quad", config) != train.checkpoint_path("quad", {**config, "epochs": 2})


def test_checkpoint_name_changes_with_the_library_code(monkeypatch):
    before = train.checkpoint_path("quad", {"lr": 0.5})
    monkeypatch.setattr(train, "_library_source", lambda modules=None: b"edited library")
    assert train.checkpoint_path("quad", {"lr": 0.5}) != before


def test_model_checkpoint_hashes_only_the_code_it_depends_on(monkeypatch):
    from vqvae_lib.vqvae import VQVAE

    closure = set()
    real = train._library_source

    def spy(modules=None):
        closure.update(modules or {"everything"})
        return real(modules)

    monkeypatch.setattr(train, "_library_source", spy)
    train.checkpoint_path("vq", {"lr": 1.0}, VQVAE(num_codes=8, code_dim=4, hidden=8, res_hidden=4))
    assert {"vqvae_lib.vqvae", "vqvae_lib.quantize", "vqvae_lib.nn", "vqvae_lib.train", "vqvae_lib.data"} <= closure
    assert "everything" not in closure and "vqvae_lib.prior" not in closure
    transitive = real(closure)
    for module in ("likelihood", "nearest", "kmeans", "quantize", "nn", "vqvae", "train", "data"):
        assert (train._PACKAGE / f"{module}.py").read_bytes() in transitive
    assert (train._PACKAGE / "vae.py").read_bytes() not in transitive


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
    import pytest

    with pytest.raises(ValueError, match="needs \\(x, labels\\) batches"):
        train.evaluate(model, unlabelled_plain)
    with pytest.raises(ValueError, match="labels"):
        train.evaluate(model, unlabelled)

