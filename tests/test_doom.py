import builtins
import os

import pytest
import torch

pytest.importorskip("vizdoom")
from vqvae_lib.video import doom  # noqa: E402
from vqvae_lib.video.doom import FORWARD, LEFT, RIGHT, Doom, collect, replay  # noqa: E402


@pytest.fixture(scope="module")
def episodes():
    return collect(4, 12, seed=7, size=32)


def test_collect_gives_whole_episodes_of_uint8_frames_and_valid_actions(episodes):
    assert episodes.frames.shape == (4, 13, 3, 32, 32) and episodes.frames.dtype == torch.uint8
    assert episodes.actions.shape == (4, 12) and set(episodes.actions.unique().tolist()) <= {FORWARD, LEFT, RIGHT}
    assert episodes.stuck.shape == (4, 12) and len(set(episodes.seeds)) == 4
    assert episodes.frames.float().std() > 10, "the frames are blank"


def test_the_same_seed_gives_the_same_episodes_and_another_seed_others(episodes):
    again = collect(4, 12, seed=7, size=32)
    assert torch.equal(again.frames, episodes.frames) and torch.equal(again.actions, episodes.actions)
    assert not torch.equal(collect(4, 12, seed=8, size=32).frames[:, 0], episodes.frames[:, 0])


def test_replay_reproduces_the_stored_frames_bit_for_bit_and_other_actions_change_only_the_future(episodes):
    i = 1
    assert torch.equal(replay(episodes.seeds[i], episodes.actions[i], size=32), episodes.frames[i])
    other = episodes.actions[i].clone()
    other[6:] = torch.where(other[6:] == RIGHT, LEFT, RIGHT)
    frames = replay(episodes.seeds[i], other, size=32)
    assert torch.equal(frames[:7], episodes.frames[i, :7])
    assert not torch.equal(frames[7], episodes.frames[i, 7])


def test_after_a_blocked_forward_step_the_policy_turns():
    ep = collect(6, 40, seed=1, size=16, stick=0.95)
    blocked = ep.stuck.nonzero().tolist()
    assert blocked, "no forward step was blocked in 240 steps: the test needs one"
    for e, t in blocked:
        assert all(a != FORWARD for a in ep.actions[e, t + 1: t + 4].tolist()), (e, t, ep.actions[e])


def test_nothing_is_written_into_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Doom(size=16) as game:
        game.start(3)
        game.step(FORWARD)
    assert os.listdir(tmp_path) == [] and os.getcwd() == str(tmp_path)


def test_bad_input_is_refused_with_what_was_expected(monkeypatch):
    with Doom(size=16) as game:
        game.start(0)
        with pytest.raises(ValueError, match="0 \\(forward\\), 1 \\(turn left\\) or 2 \\(turn right\\)"):
            game.step(3)
    with pytest.raises(ValueError, match="size >= 8"):
        Doom(size=4)
    with pytest.raises(ValueError, match="stick is a probability"):
        collect(1, 2, seed=0, stick=1.0)
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__",
                        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "vizdoom" else real_import(name, *a, **k))
    with pytest.raises(ImportError, match="pip install vizdoom"):
        doom._vizdoom()
