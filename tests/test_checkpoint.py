"""The checkpoint cache: keys that name every setting and ignore prose, buffers that survive, RNG that agrees."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vqvae_lib import checkpoint
from vqvae_lib.discrete import CategoricalVAE, CategoricalVAEConfig
from vqvae_lib.vqvae import VQVAE, VQVAEConfig


@dataclass(frozen=True)
class NoisyConfig:
    target: float = 3.0


class Noisy(nn.Module):
    """A model whose loss draws from the global RNG, like a VAE's reparameterisation."""

    def __init__(self, config=NoisyConfig()):
        super().__init__()
        self.config = config
        self.w = nn.Parameter(torch.zeros(1))

    def loss(self, x):
        noise = torch.randn(1)
        return {"loss": ((self.w - self.config.target - 0.1 * noise) ** 2).sum() + 0 * x.sum()}


def loader(n=16, batch_size=4):
    return DataLoader(TensorDataset(torch.arange(float(n)).unsqueeze(1), torch.zeros(n)), batch_size=batch_size,
                      shuffle=True, generator=torch.Generator().manual_seed(0))


def small_vqvae(**kwargs):
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(num_codes=16, code_dim=4, hidden=8, res_hidden=4, **kwargs))


def key_of(model, **kwargs):
    settings = dict(epochs=1, lr=1e-3, seed=0)
    settings.update(kwargs)
    data = settings.pop("data", None) or loader()
    return checkpoint.run_key(model, data, **settings)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VQVAE_CHECKPOINTS", str(tmp_path))
    return tmp_path


def test_load_or_fit_trains_once_then_loads(cache, capsys):
    first_model = Noisy()
    first = checkpoint.load_or_fit(first_model, "noisy", loader(), epochs=2, lr=0.5)
    second_model = Noisy()
    second = checkpoint.load_or_fit(second_model, "noisy", loader(), epochs=2, lr=0.5)
    assert "loaded cached checkpoint" in capsys.readouterr().out
    assert second.train == first.train and torch.equal(second_model.w, first_model.w)
    assert len(list(cache.glob("noisy-*.pt"))) == 1


def test_a_hit_leaves_the_same_rng_state_as_a_miss(cache):
    data = loader()
    torch.manual_seed(123)
    checkpoint.load_or_fit(Noisy(), "noisy", data, epochs=2, lr=0.5)
    after_miss = torch.rand(3), torch.randperm(16, generator=data.generator)
    data = loader()
    torch.manual_seed(456)  # whatever happened before, a run starts from its own seed
    checkpoint.load_or_fit(Noisy(), "noisy", data, epochs=2, lr=0.5)
    after_hit = torch.rand(3), torch.randperm(16, generator=data.generator)
    assert torch.equal(after_miss[0], after_hit[0]) and torch.equal(after_miss[1], after_hit[1])


@pytest.mark.parametrize("change", ["beta", "decay", "lr", "epochs", "batch_size", "subset", "seed", "init"])
def test_every_setting_that_changes_training_changes_the_key(change):
    base = key_of(small_vqvae(quantizer="ema"))
    if change == "beta":
        other = key_of(small_vqvae(quantizer="ema", beta=0.5))
    elif change == "decay":
        other = key_of(small_vqvae(quantizer="ema", decay=0.9))
    elif change == "lr":
        other = key_of(small_vqvae(quantizer="ema"), lr=2e-3)
    elif change == "epochs":
        other = key_of(small_vqvae(quantizer="ema"), epochs=2)
    elif change == "batch_size":
        other = key_of(small_vqvae(quantizer="ema"), data=loader(batch_size=8))
    elif change == "subset":
        dataset = TensorDataset(torch.zeros(20, 1))
        base = key_of(small_vqvae(quantizer="ema"), data=DataLoader(torch.utils.data.Subset(dataset, [0, 1, 2])))
        other = key_of(small_vqvae(quantizer="ema"), data=DataLoader(torch.utils.data.Subset(dataset, [0, 1, 3])))
    elif change == "seed":
        other = key_of(small_vqvae(quantizer="ema"), seed=1)
    else:
        torch.manual_seed(1)
        other = key_of(VQVAE(VQVAEConfig(num_codes=16, code_dim=4, hidden=8, res_hidden=4, quantizer="ema")))
    assert checkpoint.checkpoint_path("m", base) != checkpoint.checkpoint_path("m", other)
    assert checkpoint.checkpoint_path("m", base) == checkpoint.checkpoint_path("m", key_of(small_vqvae(quantizer="ema"))) \
        or change == "subset"


def test_editing_a_docstring_or_comment_keeps_the_key_and_editing_code_changes_it(monkeypatch):
    model = small_vqvae()
    before = checkpoint.checkpoint_path("vq", key_of(model))
    real = checkpoint._read_source
    source = real("vqvae_lib.quantizers.vq")
    assert '"""Replace each encoder vector z_e' in source and "straight-through: value e" in source
    edits = {
        "docstring": source.replace('"""Replace each encoder vector z_e', '"""Swap every encoder vector z_e'),
        "comment": source.replace("straight-through: value e", "straight through (edited comment)") + "\n# trailing\n",
        "code": source.replace("z_q = flat + (e - flat).detach()", "z_q = flat + (e - flat).detach() * 1.0"),
    }
    keys = {}
    for kind, edited in edits.items():
        assert edited != source
        monkeypatch.setattr(checkpoint, "_read_source", lambda name, e=edited: e if name == "vqvae_lib.quantizers.vq" else real(name))
        keys[kind] = checkpoint.checkpoint_path("vq", key_of(model))
    assert keys["docstring"] == before and keys["comment"] == before
    assert keys["code"] != before


def test_a_file_edited_on_disk_after_a_first_key_changes_the_next_one(monkeypatch, tmp_path):
    """The parses are remembered by the text, read afresh each time: an edit in a running kernel still counts."""
    import shutil

    package = tmp_path / "vqvae_lib"
    shutil.copytree(checkpoint._PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(checkpoint, "_PACKAGE", package)
    model = small_vqvae()
    first = key_of(model)["code"]  # the parses of the copy are now remembered
    assert "vqvae_lib.prior" not in first
    vq = package / "quantizers" / "vq.py"
    vq.write_text(vq.read_text() + "\nfrom vqvae_lib import prior\n")
    second = key_of(model)["code"]
    assert "vqvae_lib.prior" in second, "an import added on disk joins the key"
    assert second["vqvae_lib.quantizers.vq"] != first["vqvae_lib.quantizers.vq"], "and the edited file's hash changes"


def test_a_model_key_hashes_only_the_code_it_depends_on():
    code = key_of(small_vqvae())["code"]
    quantizers = {f"vqvae_lib.quantizers.{m}" for m in ("base", "vq", "nearest", "kmeans", "rotation", "fsq", "lfq",
                                                         "residual")}
    assert {"vqvae_lib.vqvae", "vqvae_lib.blocks", "vqvae_lib.likelihood", "vqvae_lib.metrics", "vqvae_lib.precision",
            "vqvae_lib.train", "vqvae_lib.checkpoint", "vqvae_lib.data", "vqvae_lib.distributed",
            "vqvae_lib.runtime"} | quantizers == set(code)


def test_a_model_without_a_config_dataclass_is_refused():
    model = nn.Linear(2, 2)
    model.config = {"lr": 1.0}  # a dict is not a config dataclass
    with pytest.raises(TypeError, match="config dataclass"):
        key_of(model)


def test_a_config_holding_a_callable_is_refused_rather_than_keyed_by_its_address():
    @dataclass(frozen=True)
    class WithCallable:
        activation: object = torch.relu

    with pytest.raises(TypeError):
        checkpoint.checkpoint_path("m", key_of(Noisy(WithCallable())))


def test_buffers_survive_a_checkpoint_round_trip(tmp_path):
    """EMA statistics, idle counters, the k-means flag and NVIL's running statistics are state too."""
    vq = small_vqvae(quantizer="ema", restart_after=3, kmeans_init=True)
    torch.manual_seed(0)
    nvil = CategoricalVAE(CategoricalVAEConfig("nvil", num_classes=4, hidden=8, res_hidden=4))
    for model in (vq, nvil):
        for _ in range(2):
            model.loss(torch.rand(8, 1, 28, 28))
    assert not torch.equal(vq.quantizer.cluster_size, torch.ones(16)) and bool(vq.quantizer.initialised)
    assert int(nvil.step) == 2 and float(nvil.signal_mean) != 0.0
    for model, fresh in ((vq, VQVAE(vq.config)), (nvil, CategoricalVAE(nvil.config))):
        path = tmp_path / f"{type(model).__name__}.pt"
        checkpoint.save_checkpoint(path, model, checkpoint.History())
        checkpoint.load_checkpoint(path, fresh)
        restored = dict(fresh.named_buffers()) | dict(fresh.named_parameters())
        for name, tensor in (*model.named_buffers(), *model.named_parameters()):
            assert torch.equal(tensor, restored[name]), name
    buffers = set(dict(vq.named_buffers())) | set(dict(nvil.named_buffers()))
    assert {"quantizer.codebook", "quantizer.cluster_size", "quantizer.code_sum", "quantizer.idle_steps",
            "quantizer.initialised", "signal_mean", "signal_var", "step"} <= buffers


def test_loading_under_a_different_key_names_what_differs(tmp_path):
    model = Noisy()
    key = key_of(model)
    path = tmp_path / "noisy.pt"
    checkpoint.save_checkpoint(path, model, checkpoint.History(), key)
    checkpoint.load_checkpoint(path, Noisy(), key)
    with pytest.raises(ValueError, match=r"different run .*'train'"):
        checkpoint.load_checkpoint(path, Noisy(), key_of(model, lr=0.1))


@pytest.mark.parametrize("setting", ["normalize", "sync"])
def test_settings_once_set_by_hand_are_config_fields_the_key_sees(setting):
    """NVIL's normalisation and the quantiser's DDP sync used to be attributes set after building."""
    torch.manual_seed(0)
    if setting == "normalize":
        make = lambda **kw: CategoricalVAE(CategoricalVAEConfig("nvil", num_classes=4, hidden=8, res_hidden=4, **kw))
        base, other = make(), make(normalize=False)
    else:
        base, other = small_vqvae(), small_vqvae(sync=False)
    other.load_state_dict(base.state_dict())
    assert checkpoint.checkpoint_path("m", key_of(base)) != checkpoint.checkpoint_path("m", key_of(other))


def test_a_categorical_vae_refuses_settings_set_after_building():
    model = CategoricalVAE(CategoricalVAEConfig("nvil", num_classes=4, hidden=8, res_hidden=4))
    with pytest.raises(AttributeError):
        model.estimator = "vimco"
    with pytest.raises(AttributeError):
        model.normalize = False


def test_the_data_in_a_key_is_the_sha1_of_its_bytes_hashed_in_place():
    """The fingerprint hashes a tensor's memory without copying it (a float frame set can be 1 GB); the
    digest is still the SHA-1 of exactly its bytes, dtype and shape, so equal data gives equal keys."""
    import hashlib

    x = torch.randn(50, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    [entry] = checkpoint._loader_fingerprint(DataLoader(TensorDataset(x), batch_size=10))["dataset"]["tensors"]
    assert entry == hashlib.sha1(x.numpy().tobytes()).hexdigest() + f":{x.dtype}:{tuple(x.shape)}"
    y = x.clone()
    y[-1, -1, -1, -1] += 1
    [other] = checkpoint._loader_fingerprint(DataLoader(TensorDataset(y), batch_size=10))["dataset"]["tensors"]
    assert other != entry
