import pytest
import torch

from vqvae_lib.audio import judges, probe
from vqvae_lib.train import fit


def test_bag_of_codes_counts_and_per_frame_codes_keep_the_order():
    codes = torch.tensor([[0, 2, 2, 1], [1, 1, 1, 1]])
    assert probe.bag_of_codes(codes, 3).tolist() == [[0.25, 0.25, 0.5], [0.0, 1.0, 0.0]]
    frames = probe.per_frame_codes(codes, 3)
    assert frames.shape == (2, 12) and frames[0].tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0]
    # two clips with the same codes in another order: the same bag, different frames
    swapped = codes[:1].flip(1)
    assert torch.equal(probe.bag_of_codes(swapped, 3), probe.bag_of_codes(codes[:1], 3))
    assert not torch.equal(probe.per_frame_codes(swapped, 3), frames[:1])
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        probe.bag_of_codes(torch.tensor([[3]]), 3)
    with pytest.raises(ValueError, match=r"\(N, T'\)"):
        probe.per_frame_codes(torch.zeros(2, 3), 3)


def test_a_mask_leaves_the_padding_out_of_every_view():
    codes = torch.tensor([[0, 2, 1, 1], [1, 0, 1, 1]])  # code 1 is the silence of the padding
    mask = torch.tensor([[True, True, False, False], [True, True, True, False]])
    assert torch.allclose(probe.bag_of_codes(codes, 3, mask), torch.tensor([[0.5, 0.0, 0.5], [1 / 3, 2 / 3, 0.0]]))
    frames = probe.per_frame_codes(codes, 3, mask).view(2, 4, 3)
    assert frames[~mask].abs().sum() == 0 and torch.equal(frames[mask], probe.per_frame_codes(codes, 3).view(2, 4, 3)[mask])
    # the same word said quickly (then padding) and slowly: the bags differ by the padding unless it is masked
    quick, slow = torch.tensor([[0, 2, 1, 1]]), torch.tensor([[0, 0, 2, 2]])
    quick_mask, slow_mask = mask[:1], torch.ones(1, 4, dtype=torch.bool)
    assert not torch.equal(probe.bag_of_codes(quick, 3), probe.bag_of_codes(slow, 3))
    assert torch.equal(probe.bag_of_codes(quick, 3, quick_mask), probe.bag_of_codes(slow, 3, slow_mask))
    z_e = torch.arange(8.0).view(1, 2, 4)  # D = 2, T' = 4
    three = torch.tensor([[True, True, True, False]])
    assert probe.mean_pooled(z_e, three).tolist() == [[1.0, 5.0]]
    assert probe.flattened(z_e, three)[0].tolist() == [0, 4, 1, 5, 2, 6, 0, 0]
    with pytest.raises(ValueError, match="bool mask of shape"):
        probe.bag_of_codes(codes, 3, mask[:, :3])
    with pytest.raises(ValueError, match="at least one true"):
        probe.mean_pooled(z_e, torch.zeros(1, 4, dtype=torch.bool))


def test_continuous_features_are_the_time_mean_and_the_ordered_vectors():
    z_e = torch.arange(12.0).view(1, 2, 6)  # D = 2, T' = 6
    assert probe.mean_pooled(z_e).tolist() == [[2.5, 8.5]]
    assert probe.flattened(z_e)[0, :4].tolist() == [0, 6, 1, 7]
    with pytest.raises(ValueError, match=r"\(N, D, T'\)"):
        probe.mean_pooled(torch.zeros(2, 3))


def _blobs(n, separation, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.tensor([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0], [0, 0, 1.0, 0, 0]]) * separation
    return centres[y] + torch.randn(n, 5, generator=g), y


def test_a_probe_reads_separable_classes_perfectly():
    (xs, ys), (xt, yt) = _blobs(150, 10.0, 0), _blobs(60, 10.0, 1)
    result = probe.linear_probe(xs, ys, xt, yt)
    assert result.test_accuracy == 1.0 and result.train_accuracy == 1.0 and abs(result.chance - 1 / 3) < 1e-6
    # scored on the test clips themselves: test labels that contradict their features score 0
    order = torch.randperm(60, generator=torch.Generator().manual_seed(3))
    wrong = probe.linear_probe(xs, ys, xt[order], (yt[order] + 1) % 3)
    assert wrong.test_accuracy == 0.0 and wrong.train_accuracy == 1.0


def test_a_probe_of_features_that_carry_no_label_is_near_chance():
    (xs, _), (xt, _) = _blobs(300, 0.0, 0), _blobs(300, 0.0, 1)
    ys, yt = torch.randint(0, 3, (300,), generator=torch.Generator().manual_seed(2)), torch.arange(300) % 3
    result = probe.linear_probe(xs, ys, xt, yt)
    assert abs(result.test_accuracy - 1 / 3) < 0.1, result


def test_probe_input_is_checked():
    x, y = _blobs(30, 1.0, 0)
    with pytest.raises(ValueError, match=r"train features \(N, F\) and labels \(N,\)"):
        probe.linear_probe(x, y[:10], x, y)
    with pytest.raises(ValueError, match="differ in width"):
        probe.linear_probe(x, y, x[:, :3], y)


def test_the_log_mel_classifier_trains_with_the_books_loop_on_labelled_batches():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(48) % 3
    x = torch.randn(48, 8, 20, generator=g) * 0.5
    x[torch.arange(48), y * 2, :] += 2.0  # class c: mel band 2c is loud
    model = judges.LogMelClassifier(judges.ClassifierConfig(n_mels=8, num_classes=3, hidden=8))
    assert model.conditional
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    fit(model, loader, epochs=8, lr=1e-2)
    assert model.predict(x, batch_size=20).eq(y).float().mean() == 1.0
    assert set(model.loss(x, y)) == {"loss", "accuracy"}
    with pytest.raises(ValueError, match=r"\(B, 8, T\)"):
        model(torch.randn(2, 5, 20))


def test_a_judge_given_speech_frames_ignores_everything_after_them():
    torch.manual_seed(0)
    model = judges.LogMelClassifier(judges.ClassifierConfig(n_mels=8, num_classes=3, hidden=8)).eval()
    x = torch.randn(2, 8, 20)
    frames = torch.tensor([7, 20])
    changed = x.clone()
    changed[0, :, 12:] = 5.0  # beyond clip 0's speech and the convolutions' reach (7 frames + 2 + 2)
    assert torch.allclose(model(x, frames), model(changed, frames))
    assert not torch.allclose(model(x), model(changed))  # pooled over the whole clip, it changes
    assert torch.allclose(model(x, torch.tensor([20, 20])), model(x))  # all frames: the plain pooling
    assert torch.equal(model.predict(x, frames, batch_size=1), model(x, frames).argmax(1))
    target = judges.labels_with_frames(torch.tensor([2, 0]), frames)
    assert target.tolist() == [[2, 7], [0, 20]]
    logits = model(x, frames)
    assert torch.allclose(model.loss(x, target)["loss"], torch.nn.functional.cross_entropy(logits, torch.tensor([2, 0])))
    with pytest.raises(ValueError, match="speech frames of shape"):
        model(x, torch.tensor([0, 3]))
