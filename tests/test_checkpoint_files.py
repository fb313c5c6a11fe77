"""Checkpoint files at their edges: another device, two writers, damaged files, unwritable folders."""

import pytest
import torch

from vqvae_lib import checkpoint
from test_checkpoint import Noisy, loader


def saved(tmp_path, model=None):
    """A checkpoint of ``model`` with the RNG states a run leaves behind, and the draw that follows them."""
    model = model or Noisy()
    data = loader()
    torch.manual_seed(5)
    data.generator.manual_seed(7)
    rng = checkpoint._rng_state(torch.device("cpu"), data)
    after = (torch.rand(3), torch.randperm(8, generator=data.generator))
    path = tmp_path / "noisy.pt"
    checkpoint.save_checkpoint(path, model, checkpoint.History(), rng=rng)
    return path, data, after


@pytest.mark.filterwarnings("ignore:for w. copying from a non-meta")
def test_a_checkpoint_loads_onto_another_device_and_restores_the_rng_state(tmp_path):
    """The meta device stands in for CUDA: RNG states loaded onto it could not be set, as on a GPU."""
    path, data, after = saved(tmp_path)
    model = Noisy().to("meta")
    _, rng = checkpoint.load_checkpoint(path, model)
    assert all(t.device.type == "cpu" and t.dtype == torch.uint8 for t in rng.values())
    torch.manual_seed(0)
    checkpoint._set_rng_state(rng, torch.device("meta"), data)
    assert torch.equal(torch.rand(3), after[0])
    assert torch.equal(torch.randperm(8, generator=data.generator), after[1])


def test_weights_follow_the_model_to_its_device(tmp_path):
    model = Noisy()
    with torch.no_grad():
        model.w.fill_(1.5)
    path, _, _ = saved(tmp_path, model)
    fresh = Noisy().to(torch.float64)  # loading must keep the model's own tensors (dtype here, device on a GPU)
    checkpoint.load_checkpoint(path, fresh)
    assert fresh.w.dtype == torch.float64 and fresh.w.item() == 1.5


def test_two_writers_of_one_path_both_finish_and_leave_a_whole_file(tmp_path, monkeypatch):
    """A second writer saves the same path between the first's write and its rename."""
    path, real_save = tmp_path / "shared.pt", torch.save
    first, second = Noisy(), Noisy()
    with torch.no_grad():
        first.w.fill_(1.0)
        second.w.fill_(2.0)
    calls = []

    def interleaved_save(obj, f, *args, **kwargs):
        calls.append(f)
        real_save(obj, f, *args, **kwargs)
        if len(calls) == 1:
            monkeypatch.setattr(torch, "save", real_save)
            checkpoint.save_checkpoint(path, second, checkpoint.History())  # the other writer, in between

    monkeypatch.setattr(torch, "save", interleaved_save)
    checkpoint.save_checkpoint(path, first, checkpoint.History())
    fresh = Noisy()
    checkpoint.load_checkpoint(path, fresh)
    assert fresh.w.item() == 1.0  # the last rename wins, and the file is whole
    assert [p.name for p in tmp_path.iterdir()] == ["shared.pt"]  # no temporary file left behind


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "truncated"], ids=["empty", "garbage", "truncated"])
def test_a_damaged_cache_file_is_named_with_its_remedy(tmp_path, monkeypatch, content):
    monkeypatch.setenv("VQVAE_CHECKPOINTS", str(tmp_path))
    model, data = Noisy(), loader()
    checkpoint.load_or_fit(model, "noisy", data, epochs=1, lr=0.1)
    (path,) = tmp_path.glob("noisy-*.pt")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2] if content == "truncated" else content)
    with pytest.raises(ValueError, match=rf"{path.name}.*delete it to retrain"):
        checkpoint.load_or_fit(Noisy(), "noisy", loader(), epochs=1, lr=0.1)


def test_a_file_of_something_else_is_refused_by_name(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"weights.pt is not a checkpoint.*delete it to retrain"):
        checkpoint.load_checkpoint(path, Noisy())


def test_an_unwritable_cache_folder_is_refused_before_training(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("VQVAE_CHECKPOINTS", str(blocker / "checkpoints"))  # a folder inside a file cannot exist

    def fit(*args, **kwargs):
        raise AssertionError("trained before finding that the checkpoint cannot be saved")

    monkeypatch.setattr(checkpoint, "fit", fit)
    with pytest.raises(ValueError, match=r"cannot write checkpoints to .*a-file/checkpoints.*VQVAE_CHECKPOINTS"):
        checkpoint.load_or_fit(Noisy(), "noisy", loader(), epochs=1, lr=0.1)
