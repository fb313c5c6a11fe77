import math

import pytest
import torch
import torch.nn.functional as F

from vqvae_lib.audio.prior1d import Prior1DConfig, WaveNetPrior


def small_prior(**kwargs):
    torch.manual_seed(0)
    config = dict(num_codes=6, channels=8, num_layers=4, dilation_cycle=3, num_speakers=3)
    return WaveNetPrior(Prior1DConfig(**{**config, **kwargs})).eval()


def test_changing_code_t_moves_no_logit_at_or_before_t_and_moves_the_next():
    model = small_prior()
    codes = torch.randint(0, 6, (1, 12), generator=torch.Generator().manual_seed(1))
    speaker = torch.tensor([2])
    base = model(codes, speaker)
    for t in range(12):
        changed = codes.clone()
        changed[0, t] = (changed[0, t] + 1) % 6
        diff = (model(changed, speaker) - base).abs().amax(dim=1)[0]
        assert diff[: t + 1].max() == 0, f"changing code {t} moved a logit at or before it"
        assert t == 11 or diff[t + 1] > 0, f"position {t + 1} does not see code {t}"


def test_the_gradient_of_the_logits_at_t_reaches_exactly_the_receptive_field_before_t():
    model = small_prior()  # dilations 1, 2, 4, 1: the logits at t see codes t-9 .. t-1
    assert model.receptive_field == 9
    codes = torch.randint(0, 6, (1, 16), generator=torch.Generator().manual_seed(2))
    for t in (0, 5, 15):
        e = model.embedding(codes).transpose(1, 2).detach().requires_grad_(True)
        model.logits_from_embedded(e, torch.tensor([1]))[0, :, t].sum().backward()
        reached = e.grad[0].abs().sum(dim=0) > 0
        expected = torch.zeros(16, dtype=torch.bool)
        expected[max(0, t - 9): t] = True
        assert torch.equal(reached, expected), (t, reached)


def test_the_speaker_reaches_the_first_position_and_each_example_gets_its_own():
    model = small_prior()
    codes = torch.randint(0, 6, (2, 5), generator=torch.Generator().manual_seed(3))
    zero, one = model(codes, torch.tensor([0, 0])), model(codes, torch.tensor([1, 1]))
    assert (zero - one).abs().amax(dim=1).min() > 1e-4  # position 0 has no codes before it: only the speaker
    mixed = model(codes, torch.tensor([0, 1]))
    assert torch.allclose(mixed[0], zero[0]) and torch.allclose(mixed[1], one[1])
    for layer in model.layers:
        torch.nn.init.zeros_(layer.speaker_bias.weight)
    assert torch.equal(model(codes, torch.tensor([0, 0])), model(codes, torch.tensor([2, 2])))


def test_loss_is_cross_entropy_in_nats_and_bits():
    model = small_prior()
    codes, speaker = torch.randint(0, 6, (3, 7)), torch.tensor([0, 1, 2])
    out = model.loss(codes, speaker)
    expected = F.cross_entropy(model(codes, speaker), codes)
    assert torch.allclose(out["loss"], expected) and torch.allclose(out["bits"], expected / math.log(2))
    assert model.conditional and not small_prior(num_speakers=0).conditional


def test_training_fits_a_speaker_dependent_pattern_and_sampling_reproduces_it():
    torch.manual_seed(0)
    model = WaveNetPrior(Prior1DConfig(num_codes=4, channels=16, num_layers=3, num_speakers=2))
    pattern = torch.tensor([[0, 1, 2, 3, 0, 1], [3, 3, 2, 2, 1, 1]])  # speaker s always says pattern[s]
    codes, speaker = pattern.repeat(8, 1), torch.tensor([0, 1]).repeat(8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        model.loss(codes, speaker)["loss"].backward()
        opt.step()
    assert model.loss(codes, speaker)["loss"] < 0.05
    for s in (0, 1):
        samples = model.sample(10, 6, speaker=s, generator=torch.Generator().manual_seed(0))
        assert (samples == pattern[s]).all(dim=1).float().mean() >= 0.9


def test_sampling_shapes_range_determinism_and_mode():
    model = small_prior()
    a = model.sample(3, 5, torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(7))
    b = model.sample(3, 5, torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(7))
    assert a.shape == (3, 5) and a.dtype == torch.long and 0 <= a.min() and a.max() < 6 and torch.equal(a, b)
    model.train()
    model.sample(1, 2, 0)
    assert model.training
    with pytest.raises(ValueError, match="temperature"):
        model.sample(1, 2, 0, temperature=0)


@pytest.mark.parametrize("codes, speaker, message", [
    (torch.zeros(2, 1, 3, dtype=torch.long), torch.tensor([0, 1]), r"\(B, T'\) and dtype int64"),
    (torch.zeros(2, 3), torch.tensor([0, 1]), r"\(B, T'\) and dtype int64"),
    (torch.full((2, 3), 6), torch.tensor([0, 1]), r"in \[0, 6\)"),
    (torch.zeros(2, 3, dtype=torch.long), None, r"speaker-conditional.*got none"),
    (torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 3]), r"0\.\.2"),
])
def test_bad_input_is_rejected_with_a_clear_message(codes, speaker, message):
    with pytest.raises(ValueError, match=message):
        small_prior()(codes, speaker)
