"""VQVAEConfig's one rule: every field acts for the chosen quantiser, or setting it is refused."""

from dataclasses import fields, replace

import pytest
import torch

from vqvae_lib import checkpoint
from vqvae_lib.vqvae import ACTING_FIELDS, TRUNK_FIELDS, VQVAE, VQVAEConfig

SMALL = dict(hidden=8, res_hidden=4)
BASE = {
    "vq": VQVAEConfig(num_codes=8, code_dim=4, **SMALL),
    "ema": VQVAEConfig(quantizer="ema", num_codes=8, code_dim=4, **SMALL),
    "rvq": VQVAEConfig(quantizer="rvq", num_codes=8, code_dim=4, **SMALL),
    "rvq-ema": VQVAEConfig(quantizer="rvq", rvq_stage="ema", num_codes=8, code_dim=4, **SMALL),
    "fsq": VQVAEConfig(quantizer="fsq", levels=(3, 3), num_codes=9, code_dim=2, **SMALL),
    "lfq": VQVAEConfig(quantizer="lfq", num_codes=16, code_dim=4, **SMALL),
}
OTHER_VALUE = dict(beta=0.5, decay=0.9, eps=1e-2, init_scale=0.05, kmeans_init=True, restart_after=1,
                   gradient="rotation", levels=(3, 3), num_stages=3, rvq_stage="ema", entropy_weight=0.5)


def step(config):
    """Loss, encoder gradient and state after two training forwards from one seed: what a field can change."""
    torch.manual_seed(0)
    model = VQVAE(config)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    model.loss(x)
    out = model.loss(x)
    out["loss"].backward()
    grad = torch.cat([p.grad.flatten() for p in model.encoder.parameters()])
    state = torch.cat([t.float().flatten() for t in model.state_dict().values()])
    return out["loss"].detach(), grad, state


def differs(a, b):
    return any(x.shape != y.shape or not torch.allclose(x, y) for x, y in zip(a, b))


CASES = [(name, f) for name in BASE for f in OTHER_VALUE if f not in ("levels",) or name != "fsq"]


@pytest.mark.parametrize("name, field", CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_every_field_acts_or_is_refused(name, field):
    base = BASE[name]
    if getattr(base, field) == OTHER_VALUE[field]:
        pytest.skip("already the value tried")
    try:
        changed = replace(base, **{field: OTHER_VALUE[field]})
    except ValueError as err:
        assert field in str(err) and "leave it out" in str(err)
        return
    assert differs(step(base), step(changed)), f"{field} was accepted for {name} and changed nothing"


def test_rvq_stages_take_the_ema_and_vq_settings():
    ema = VQVAE(VQVAEConfig(quantizer="rvq", rvq_stage="ema", decay=0.9, eps=1e-3, num_codes=8, code_dim=4, **SMALL))
    assert all(s.decay == 0.9 and s.eps == 1e-3 for s in ema.quantizer.stages)
    torch.manual_seed(0)
    vq = VQVAE(VQVAEConfig(quantizer="rvq", init_scale=1e-3, num_codes=8, code_dim=4, **SMALL))
    assert all(s.codebook.abs().max() <= 1e-3 for s in vq.quantizer.stages)


def test_sync_reaches_every_codebook():
    for name in ("vq", "ema", "rvq"):
        model = VQVAE(replace(BASE[name], sync=False))
        stages = getattr(model.quantizer, "stages", [model.quantizer])
        assert not model.quantizer.sync and not any(s.sync for s in stages)


def test_only_acting_fields_enter_the_checkpoint_key():
    torch.manual_seed(0)
    model = VQVAE(BASE["vq"])
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(4, 1, 28, 28), torch.zeros(4)))
    keyed = set(checkpoint.run_key(model, data, epochs=1, lr=1e-3)["config"])
    assert keyed == TRUNK_FIELDS | ACTING_FIELDS["vq"]
    assert "decay" not in keyed and "levels" not in keyed
    every = {f.name for f in fields(VQVAEConfig)}
    assert all(fields_ <= every for fields_ in ACTING_FIELDS.values())


@pytest.mark.parametrize("make", [lambda: VQVAEConfig(hidden=0), lambda: VQVAEConfig(code_dim=-1),
                                  lambda: VQVAEConfig(num_codes=2.5)], ids=["hidden", "code_dim", "num_codes"])
def test_sizes_must_be_positive_integers(make):
    with pytest.raises(ValueError, match="must be a positive integer"):
        make()


def test_the_vae_and_the_prior_check_their_sizes_too():
    from vqvae_lib.prior import PriorConfig
    from vqvae_lib.vae import VAEConfig

    with pytest.raises(ValueError, match=r"VAEConfig.hidden must be a positive integer, got 0"):
        VAEConfig(hidden=0)
    with pytest.raises(ValueError, match=r"PriorConfig.channels"):
        PriorConfig(channels=0)
