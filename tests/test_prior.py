import pytest
import torch
import torch.nn.functional as F

from vqvae_lib.prior import GatedLayer, GatedPixelCNN, PriorConfig


def small_prior(**kwargs):
    torch.manual_seed(0)
    return GatedPixelCNN(PriorConfig(num_codes=6, channels=8, num_layers=6, **kwargs)).eval()


def dependencies(model, codes, q):
    """The positions p whose code changes the logits at position q (raster index)."""
    h, w = codes.shape[1:]
    base = model(codes)[0, :, q // w, q % w]
    found = set()
    for p in range(h * w):
        changed = codes.clone()
        changed[0, p // w, p % w] = (changed[0, p // w, p % w] + 1) % model.num_codes
        if not torch.allclose(model(changed)[0, :, q // w, q % w], base, atol=1e-6, rtol=0):
            found.add(p)
    return found


def test_logits_are_causal_in_raster_order():
    model = small_prior()
    codes = torch.randint(0, 6, (1, 5, 5), generator=torch.Generator().manual_seed(1))
    for p in range(25):
        changed = codes.clone()
        changed[0, p // 5, p % 5] = (changed[0, p // 5, p % 5] + 1) % 6
        diff = (model(changed) - model(codes)).abs().amax(dim=1).flatten()
        assert diff[: p + 1].max() == 0, f"changing position {p} moved a logit at or before it"


def test_no_blind_spot_every_earlier_position_is_seen():
    model = small_prior()
    codes = torch.randint(0, 6, (1, 5, 5), generator=torch.Generator().manual_seed(2))
    for q in (12, 24):
        assert dependencies(model, codes, q) == set(range(q)), f"position {q} misses part of its context"


def test_cropped_rows_give_the_same_logits():
    model = small_prior()
    codes = torch.randint(0, 6, (3, 5, 4))
    full = model(codes)
    for rows in (1, 3):
        assert torch.allclose(model(codes[:, :rows]), full[:, :, :rows], atol=1e-6)


def test_shifted_convolutions_equal_masked_convolutions():
    torch.manual_seed(0)
    layer = GatedLayer(channels=4, kernel_size=5)
    v, h = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    v_out, h_out = layer(v, h)
    # The same layer with full 5x5 / 1x5 kernels whose disallowed taps are zero.
    v_kernel = torch.cat([layer.v_conv.weight, torch.zeros(8, 4, 2, 5)], dim=2)
    h_kernel = torch.cat([layer.h_conv.weight, torch.zeros(8, 4, 1, 2)], dim=3)
    v_pre = F.conv2d(v, v_kernel, layer.v_conv.bias, padding=2)
    v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :6]
    h_pre = F.conv2d(h, h_kernel, layer.h_conv.bias, padding=(0, 2)) + layer.v_to_h(v_down)
    gate = lambda x: torch.tanh(x.chunk(2, 1)[0]) * torch.sigmoid(x.chunk(2, 1)[1])
    assert torch.allclose(v_out, gate(v_pre), atol=1e-6)
    assert torch.allclose(h_out, h + layer.h_out(gate(h_pre)), atol=1e-6)


def test_loss_is_cross_entropy_in_nats_and_bits():
    model = small_prior()
    codes = torch.randint(0, 6, (4, 3, 3))
    out = model.loss(codes)
    expected = F.cross_entropy(model(codes), codes)
    assert torch.allclose(out["loss"], expected)
    assert torch.allclose(out["bits"], expected / torch.log(torch.tensor(2.0)))


def test_a_float64_prior_keeps_float64_in_its_cross_entropy():
    model = small_prior().double()
    codes = torch.randint(0, 6, (4, 3, 3), generator=torch.Generator().manual_seed(3))
    logits = model(codes)
    expected = (logits.logsumexp(1) - logits.gather(1, codes[:, None]).squeeze(1)).mean()  # -log softmax, by hand
    out = model.loss(codes)
    assert out["loss"].dtype == torch.float64
    assert abs(out["loss"].item() - expected.item()) < 1e-12


def test_an_untrained_prior_is_close_to_uniform_and_training_fits_a_pattern():
    torch.manual_seed(0)
    model = GatedPixelCNN(PriorConfig(num_codes=4, channels=16, num_layers=3))
    assert abs(model.loss(torch.randint(0, 4, (8, 3, 3)))["loss"].item() - torch.log(torch.tensor(4.0)).item()) < 0.2
    rows, cols = torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij")
    checker = (rows + cols) % 2
    data = torch.stack([checker, 1 - checker] * 8)  # two patterns: 1 bit per grid, about 0.1 bits per latent
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        model.loss(data)["loss"].backward()
        opt.step()
    assert model.loss(data)["loss"].item() < 0.1
    samples = model.sample(20, (3, 3), generator=torch.Generator().manual_seed(0))
    matches = ((samples == checker).all(dim=(1, 2)) | (samples == 1 - checker).all(dim=(1, 2))).float().mean()
    assert matches >= 0.9


def test_sampling_shapes_range_and_determinism():
    model = small_prior()
    a = model.sample(3, (3, 4), generator=torch.Generator().manual_seed(7))
    b = model.sample(3, (3, 4), generator=torch.Generator().manual_seed(7))
    c = model.sample(3, (3, 4), generator=torch.Generator().manual_seed(8))
    assert a.shape == (3, 3, 4) and a.dtype == torch.long and 0 <= a.min() and a.max() < 6
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(3)
    d = model.sample(3, (3, 4))
    torch.manual_seed(3)
    assert torch.equal(d, model.sample(3, (3, 4)))
    model.train()
    model.sample(1, (2, 2))
    assert model.training, "sampling must restore the training mode"


def test_samples_follow_the_softmax_and_temperature_sharpens_it():
    model = small_prior()
    probs = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05, 0.0001])
    last = model.head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(probs.log())
    for temperature in (1.0, 0.5):
        draws = model.sample(4000, (1, 1), temperature=temperature, generator=torch.Generator().manual_seed(0))
        expected = torch.softmax(probs.log() / temperature, dim=0)
        observed = torch.bincount(draws.flatten(), minlength=6) / 4000
        assert (observed - expected).abs().max() < 0.03, (temperature, observed, expected)
    with pytest.raises(ValueError, match="temperature must be positive"):
        model.sample(1, (2, 2), temperature=0)


@pytest.mark.parametrize("kernel_size, num_classes", [(5, None), (3, 3), (5, 3)])
def test_causal_and_without_blind_spot_for_wider_kernels_and_with_labels(kernel_size, num_classes):
    model = small_prior(kernel_size=kernel_size, num_classes=num_classes)
    labels = torch.tensor([2]) if num_classes else None
    codes = torch.randint(0, 6, (1, 5, 5), generator=torch.Generator().manual_seed(3))
    base = model(codes, labels)
    for p in range(25):
        changed = codes.clone()
        changed[0, p // 5, p % 5] = (changed[0, p // 5, p % 5] + 1) % 6
        diff = (model(changed, labels) - base).abs().amax(dim=1).flatten()
        assert diff[: p + 1].max() == 0, f"changing position {p} moved a logit at or before it"
        assert p == 24 or diff[p + 1] > 0, f"position {p + 1} does not see its left neighbour {p}"


def test_class_conditioning_reaches_every_position_and_each_example_gets_its_own_label():
    model = small_prior(num_classes=3)
    assert model.conditional
    codes = torch.randint(0, 6, (2, 3, 3), generator=torch.Generator().manual_seed(0))
    zero, one = model(codes, torch.tensor([0, 0])), model(codes, torch.tensor([1, 1]))
    # the first position has no context at all: only the label can move its logits
    assert (zero - one).abs().amax(dim=1).min() > 1e-4
    mixed = model(codes, torch.tensor([0, 1]))
    assert torch.allclose(mixed[0], zero[0]) and torch.allclose(mixed[1], one[1])
    for layer in model.layers:  # with the class biases zeroed, the label no longer matters
        torch.nn.init.zeros_(layer.class_bias.weight)
    assert torch.equal(model(codes, torch.tensor([0, 0])), model(codes, torch.tensor([2, 2])))
    samples = model.sample(2, (3, 3), labels=torch.tensor([0, 2]), generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="class-conditional"):
        model(codes)
    with pytest.raises(ValueError, match="unconditional"):
        small_prior()(codes, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels of shape"):
        model(codes, torch.tensor([0]))


def test_bad_indices_are_rejected_with_a_clear_message():
    model = small_prior()
    with pytest.raises(ValueError, match=r"\(B, H, W\) and dtype int64"):
        model(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        model(torch.zeros(2, 1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"in \[0, 6\)"):
        model(torch.full((1, 2, 2), 6))
    with pytest.raises(ValueError, match="kernel_size"):
        GatedPixelCNN(PriorConfig(num_codes=4, kernel_size=4))


def test_encode_dataset_keeps_order_and_labels():
    from torch.utils.data import DataLoader, TensorDataset

    from vqvae_lib.data import encode_dataset

    images = torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 2, 2)
    loader = DataLoader(TensorDataset(images, torch.arange(10) % 3), batch_size=4)
    codes = encode_dataset(lambda x: x[:, 0].long(), loader, "cpu")
    assert codes.tensors[0].shape == (10, 2, 2) and codes.tensors[0].dtype == torch.long
    assert torch.equal(codes.tensors[0][:, 0, 0], torch.arange(10))
    assert torch.equal(codes.tensors[1], torch.arange(10) % 3)
    with pytest.raises(ValueError, match="labels"):
        encode_dataset(lambda x: x, DataLoader(images, batch_size=4), "cpu")


def test_a_conditioning_map_reaches_every_position_and_keeps_the_logits_causal():
    model = small_prior(cond_channels=2)
    codes = torch.randint(0, 6, (1, 5, 5), generator=torch.Generator().manual_seed(4))
    cond = torch.randn(1, 2, 5, 5, generator=torch.Generator().manual_seed(5))
    base = model(codes, cond=cond)
    for p in range(25):
        changed = codes.clone()
        changed[0, p // 5, p % 5] = (changed[0, p // 5, p % 5] + 1) % 6
        diff = (model(changed, cond=cond) - base).abs().amax(dim=1).flatten()
        assert diff[: p + 1].max() == 0, f"changing position {p} moved a logit at or before it"
    # the map enters at each position's own gate: its value at (i, j) moves the logits at (i, j)
    for i, j in ((0, 0), (2, 3), (4, 4)):
        moved = cond.clone()
        moved[0, :, i, j] += 1.0
        assert (model(codes, cond=moved) - base)[0, :, i, j].abs().max() > 1e-4
    assert (model(codes, cond=torch.zeros_like(cond)) - base).abs().amax(dim=1).min() > 1e-5
    samples = model.sample(2, (5, 5), generator=torch.Generator().manual_seed(0), cond=cond.expand(2, -1, -1, -1))
    assert samples.shape == (2, 5, 5)


def test_a_missing_or_misshapen_conditioning_map_is_rejected():
    model = small_prior(cond_channels=2)
    codes = torch.randint(0, 6, (2, 3, 3))
    with pytest.raises(ValueError, match=r"cond of shape \(2, 2, 3, 3\).*got none"):
        model(codes)
    with pytest.raises(ValueError, match=r"cond of shape \(2, 2, 3, 3\).*got \(2, 2, 4, 4\)"):
        model(codes, cond=torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match="cond_channels"):
        small_prior()(codes, cond=torch.zeros(2, 2, 3, 3))
