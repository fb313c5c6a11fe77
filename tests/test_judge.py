import pytest
import torch

from vqvae_lib.train import fit
from vqvae_lib.video.judge import ActionJudge, JudgeConfig, frame_pairs


def test_frame_pairs_stack_frame_t_and_frame_t_plus_1_in_order():
    frames = torch.arange(2 * 3 * 3 * 2 * 2, dtype=torch.uint8).view(2, 3, 3, 2, 2)
    pairs = frame_pairs(frames)
    assert pairs.shape == (4, 6, 2, 2)
    assert pairs.dtype == torch.uint8  # a quarter of the memory of floats
    assert torch.equal(pairs[1, :3], frames[0, 1]) and torch.equal(pairs[1, 3:], frames[0, 2])
    assert torch.equal(pairs[2, :3], frames[1, 0])
    with pytest.raises(ValueError, match=r"\(B, T\+1, 3, H, W\)"):
        frame_pairs(frames[:, :1])


def test_the_judge_learns_which_way_a_picture_moved():
    """Smooth random pictures; action 0 keeps them, 1 shifts them right by 4 pixels, 2 left."""
    coarse = torch.rand(900, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x = torch.nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)
    actions = torch.arange(900) % 3
    shift = torch.tensor([0, 4, -4])
    after = torch.stack([torch.roll(a, int(shift[k]), dims=-1) for a, k in zip(x, actions)])
    pairs = frame_pairs(torch.stack([x, after], 1))
    torch.manual_seed(0)
    judge = ActionJudge(JudgeConfig(hidden=16))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(pairs[:600], actions[:600]), batch_size=50,
                                         shuffle=True)
    fit(judge, loader, epochs=30, lr=3e-3)
    assert judge.predict(pairs[600:]).eq(actions[600:]).float().mean() > 0.9


def test_uint8_pairs_are_judged_as_their_floats_in_0_1():
    pairs = torch.randint(0, 256, (4, 6, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    judge = ActionJudge(JudgeConfig(hidden=8)).eval()
    with torch.no_grad():
        assert torch.allclose(judge(pairs), judge(pairs.float() / 255))


def test_bad_input_is_refused_with_what_was_expected():
    with pytest.raises(ValueError, match=r"\(B, 6, H, W\)"):
        ActionJudge()(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="uint8 or float"):
        ActionJudge()(torch.zeros(2, 6, 16, 16, dtype=torch.long))
