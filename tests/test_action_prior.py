import math

import pytest
import torch

from vqvae_lib.train import fit
from vqvae_lib.video.action_prior import ActionPrior, ActionPriorConfig


def small_prior(**kwargs):
    torch.manual_seed(0)
    config = dict(num_codes=6, context=2, embed_dim=4, hidden=8, blocks=2, channels=8, num_layers=3)
    return ActionPrior(ActionPriorConfig(**{**config, **kwargs})).eval()


def random_codes(shape, seed, k=6):
    return torch.randint(0, k, shape, generator=torch.Generator().manual_seed(seed))


def test_a_target_code_moves_only_the_logits_after_it_in_raster_order_and_never_the_auxiliary_head():
    model = small_prior()
    codes, actions = random_codes((1, 3, 5, 5), 1), torch.tensor([2])
    base, base_aux = model(codes, actions)
    for p in range(25):
        changed = codes.clone()
        changed[0, -1].view(-1)[p] = (changed[0, -1].view(-1)[p] + 1) % 6
        logits, aux = model(changed, actions)
        diff = (logits - base).abs().amax(dim=1)[0].flatten()
        assert diff[: p + 1].max() == 0, f"changing target code {p} moved a logit at or before it"
        assert p == 24 or diff[p + 1:].max() > 0, f"no later position sees target code {p}"
        assert torch.equal(aux, base_aux), "the auxiliary head saw the frame it predicts"


def test_the_action_and_the_last_context_frame_reach_every_position():
    model = small_prior()
    codes = random_codes((1, 3, 5, 5), 2)
    logits, aux = model(codes, torch.tensor([0]))
    for other in (1, 2):
        moved, moved_aux = model(codes, torch.tensor([other]))
        assert ((moved - logits).abs().amax(dim=1) > 0).all(), f"action {other} leaves some position unchanged"
        assert ((moved_aux - aux).abs().amax(dim=1) > 0).all()
    changed = codes.clone()
    changed[0, 1] = (changed[0, 1] + 1) % 6
    moved, _ = model(changed, torch.tensor([0]))
    assert ((moved - logits).abs().amax(dim=1) > 0).all(), "the previous frame does not reach every position"


def test_the_loss_adds_aux_weight_times_the_auxiliary_cross_entropy_and_trains_the_head():
    codes, actions = random_codes((4, 3, 5, 5), 3), torch.tensor([0, 1, 2, 0])
    for weight in (0.0, 0.5, 2.0):
        model = small_prior(aux_weight=weight)
        out = model.loss(codes, actions)
        expected = (out["bits"] + weight * out["aux_bits"]) * math.log(2.0)
        assert torch.allclose(out["loss"], expected, atol=1e-6), f"aux_weight={weight}"
        out["loss"].backward()
        head_grad = model.aux_head[-1].weight.grad
        assert (head_grad is not None and head_grad.abs().sum() > 0) == (weight > 0)


def test_a_rollout_sees_no_future_action_and_no_frame_older_than_its_context():
    model = small_prior()
    context = random_codes((2, 4, 4, 4), 3)
    actions = torch.tensor([[0, 1, 2, 0, 1], [2, 2, 1, 0, 0]])
    base = model.rollout(context, actions, generator=torch.Generator().manual_seed(0))
    assert base.shape == (2, 5, 4, 4) and base.dtype == torch.long
    for s in range(5):
        later = actions.clone()
        later[:, s] = (later[:, s] + 1) % 3
        out = model.rollout(context, later, generator=torch.Generator().manual_seed(0))
        assert torch.equal(out[:, :s], base[:, :s]), f"changing the action at step {s} changed an earlier frame"
    older = context.clone()
    older[:, :2] = (older[:, :2] + 1) % 6  # context=2: only the last two frames count
    assert torch.equal(model.rollout(older, actions, generator=torch.Generator().manual_seed(0)), base)


def test_training_learns_action_dependent_motion_and_rollouts_follow_the_action():
    """Toy world: action 0 keeps the grid, 1 rolls it right by one column, 2 left. The prior must use
    the action to predict the next grid, and a rollout must move the way it is told."""
    torch.manual_seed(0)
    first = random_codes((600, 6, 6), 4, k=4)
    actions = torch.randint(0, 3, (600,), generator=torch.Generator().manual_seed(5))
    shift = torch.tensor([0, 1, -1])
    before = torch.randint(0, 3, (600,), generator=torch.Generator().manual_seed(6))
    older = torch.stack([torch.roll(g, -int(shift[a]), dims=-1) for g, a in zip(first, before)])
    nxt = torch.stack([torch.roll(g, int(shift[a]), dims=-1) for g, a in zip(first, actions)])
    codes = torch.stack([older, first, nxt], 1)
    model = ActionPrior(ActionPriorConfig(num_codes=4, context=2, embed_dim=8, hidden=32, blocks=2, channels=16, num_layers=2))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(codes, actions), batch_size=50, shuffle=True)
    fit(model, loader, epochs=10, lr=3e-3)
    model.eval()
    right = model.nll_bits(codes[:100], actions[:100]).mean()
    wrong = model.nll_bits(codes[:100], (actions[:100] + 1) % 3).mean()
    assert right < 15 and wrong > right + 100, (right, wrong)  # 36 codes of 2 bits: 72 bits a frame without context
    start = codes[:20, :2]
    for a in (1, 2):
        out = model.rollout(start, torch.full((20, 2), a), temperature=0.5, generator=torch.Generator().manual_seed(0))
        truth = torch.roll(start[:, -1], int(shift[a]), dims=-1)
        seen = slice(2, None) if a == 1 else slice(None, -2)  # columns that come from inside the frame for 2 steps
        assert (out[:, 0, :, seen] == truth[..., seen]).float().mean() > 0.9
        assert (out[:, 1, :, seen] == torch.roll(truth, int(shift[a]), dims=-1)[..., seen]).float().mean() > 0.8


def test_bad_input_is_refused_with_what_was_expected():
    model = small_prior()
    codes = random_codes((2, 3, 4, 4), 6)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.loss(codes[:, :2], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="actions must lie in"):
        model.loss(codes, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="int64 actions of shape"):
        model.loss(codes, torch.tensor([0]))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 6\)"):
        model.loss(codes + 6, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="n >= 2 frames"):
        model.rollout(codes[:, :1], torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"actions of shape \(2, T\)"):
        model.rollout(codes, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="aux_weight"):
        ActionPriorConfig(aux_weight=-1.0)
    out = model.loss(codes, torch.tensor([0, 1]))
    assert math.isfinite(out["loss"].item()) and set(out) == {"loss", "bits", "aux_bits"}
