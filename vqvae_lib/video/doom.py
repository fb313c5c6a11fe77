"""Frames of a 3-D world from ViZDoom, collected from a seed and replayed exactly (Chapter 09).

The paper's video experiments use DeepMind Lab (its Sec. 4.2 and 4.4), which does not install here.
ViZDoom (Wydmuch et al., 2019) is a 3-D first-person engine of the same kind: it renders headless,
offline, and deterministically: the same episode seed and the same actions give bit-identical frames.
That is what lets Chapter 09 compare an imagined future with the true one: :func:`replay` re-runs the
simulator from the seed with any actions.

The world is the scenario ``my_way_home`` (textured rooms, no enemies). The agent has three actions,
:data:`ACTIONS`; each is held for ``frame_skip`` game tics (our choice: 4 tics turn the view by about
10 degrees, so one action changes the picture visibly). Frames are the 160 x 120 screen resized to
``size x size`` RGB by area averaging, stored as uint8.

The behaviour policy (ours) explores without a goal: a sticky random walk (keep the last action with
probability ``stick``, else draw forward / left / right with probabilities 0.6 / 0.2 / 0.2) with an
unstick rule (after a forward step that moved less than one map unit, turn one way for the next
``unstick_steps`` steps), so few frames are wall close-ups.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ACTIONS = ("forward", "turn left", "turn right")
FORWARD, LEFT, RIGHT = 0, 1, 2
SCENARIO = "my_way_home"


def _vizdoom():
    try:
        import vizdoom
    except ImportError as err:
        raise ImportError("Chapter 09 renders its frames with ViZDoom, which is not installed: "
                          "pip install vizdoom (or pip install -e '.[book]')") from err
    return vizdoom


@contextlib.contextmanager
def _in_scratch_folder():
    """ViZDoom writes ``_vizdoom.ini`` and a ``_vizdoom/`` folder into the working directory: keep them out."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="vizdoom-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(here)


@dataclass
class Episodes:
    """``frames (E, T+1, 3, size, size)`` uint8, ``actions (E, T)`` int64 (``actions[:, t]`` leads from
    frame ``t`` to frame ``t+1``), ``seeds``: the episode seed that :func:`replay` needs for each row,
    and ``stuck (E, T)`` bool: a forward step that did not move."""

    frames: torch.Tensor
    actions: torch.Tensor
    seeds: list[int]
    stuck: torch.Tensor
    frame_skip: int


class Doom:
    """One headless game of ``my_way_home``; use it as a context manager (``with Doom() as game``)."""

    def __init__(self, size: int = 64, frame_skip: int = 4):
        if size < 8 or frame_skip < 1:
            raise ValueError(f"need size >= 8 pixels and frame_skip >= 1 tic, got size={size}, frame_skip={frame_skip}")
        vzd = _vizdoom()
        self.size, self.frame_skip = size, frame_skip
        self._scratch = _in_scratch_folder()
        self._scratch.__enter__()
        game = vzd.DoomGame()
        game.load_config(os.path.join(vzd.scenarios_path, f"{SCENARIO}.cfg"))
        game.set_window_visible(False)
        game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
        game.set_screen_format(vzd.ScreenFormat.RGB24)
        game.set_available_buttons([vzd.Button.MOVE_FORWARD, vzd.Button.TURN_LEFT, vzd.Button.TURN_RIGHT])
        game.set_available_game_variables([vzd.GameVariable.POSITION_X, vzd.GameVariable.POSITION_Y])
        game.set_episode_timeout(1_000_000)
        game.init()
        self.game = game

    def __enter__(self) -> "Doom":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.game is not None:
            self.game.close()
            self.game = None
            self._scratch.__exit__(None, None, None)

    def start(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A new episode from ``seed``: its first screen (120, 160, 3) and the player's (x, y)."""
        self.game.set_seed(int(seed))
        self.game.new_episode()
        return self._observe()

    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        state = self.game.get_state()
        return state.screen_buffer.copy(), np.asarray(state.game_variables[:2], dtype=np.float64)

    def step(self, action: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Hold ``action`` for ``frame_skip`` tics; the next screen and position, or None if the episode ended."""
        if action not in (FORWARD, LEFT, RIGHT):
            raise ValueError(f"an action is 0 (forward), 1 (turn left) or 2 (turn right), got {action!r}")
        buttons = [0, 0, 0]
        buttons[action] = 1
        self.game.make_action(buttons, self.frame_skip)
        return None if self.game.is_episode_finished() else self._observe()

    def to_frames(self, screens: list[np.ndarray]) -> torch.Tensor:
        """Screens (120, 160, 3) uint8 -> ``(T, 3, size, size)`` uint8 by area averaging."""
        x = torch.from_numpy(np.stack(screens)).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(self.size, self.size), mode="area")
        return x.round().clamp(0, 255).to(torch.uint8)


def _policy_step(rng: np.random.Generator, last: int, stuck_turns: int, stick: float) -> int:
    if stuck_turns:
        return last if last != FORWARD else int(rng.choice([LEFT, RIGHT]))
    if rng.random() < stick:
        return last
    return int(rng.choice(3, p=[0.6, 0.2, 0.2]))


def collect(num_episodes: int, steps: int, seed: int, size: int = 64, frame_skip: int = 4,
            stick: float = 0.8, unstick_steps: int = 3) -> Episodes:
    """``num_episodes`` episodes of ``steps`` actions each under the behaviour policy, all from ``seed``.

    Episode ``i`` starts from an episode seed drawn from ``seed``; an episode that ends early (the
    agent reached the goal) is dropped and another seed drawn, so every row has ``steps`` actions.
    """
    if num_episodes < 1 or steps < 1:
        raise ValueError(f"need num_episodes >= 1 and steps >= 1, got {num_episodes} and {steps}")
    if not 0.0 <= stick < 1.0:
        raise ValueError(f"stick is a probability in [0, 1), got {stick}")
    rng = np.random.default_rng(seed)
    # Buffers for all episodes, filled in place: keeping each episode's small tensors among the large
    # freed temporaries fragmented the heap to 3.9 GB for 600 episodes of 0.2 GB (0.7 GB peak now).
    buffer = torch.empty(num_episodes, steps + 1, size, size, 3, dtype=torch.uint8)
    actions = torch.empty(num_episodes, steps, dtype=torch.long)
    stuck = torch.empty(num_episodes, steps, dtype=torch.bool)
    seeds = []
    with Doom(size, frame_skip) as game:
        while len(seeds) < num_episodes:
            episode_seed = int(rng.integers(2**31 - 1))
            screen, pos = game.start(episode_seed)
            screens, acts, stucks, last, turns = [screen], [], [], FORWARD, 0
            for _ in range(steps):
                action = _policy_step(rng, last, turns, stick)
                turns = max(turns - 1, 0)
                out = game.step(action)
                if out is None:
                    break
                screen, new_pos = out
                blocked = action == FORWARD and np.hypot(*(new_pos - pos)) < 1.0
                if blocked:
                    turns = unstick_steps
                screens.append(screen)
                acts.append(action)
                stucks.append(blocked)
                pos, last = new_pos, action
            if len(acts) < steps:
                continue
            buffer[len(seeds)] = game.to_frames(screens).permute(0, 2, 3, 1)
            actions[len(seeds)] = torch.tensor(acts)
            stuck[len(seeds)] = torch.tensor(stucks)
            seeds.append(episode_seed)
    return Episodes(buffer.permute(0, 1, 4, 2, 3), actions, seeds, stuck, frame_skip)


def replay(seed: int, actions, size: int = 64, frame_skip: int = 4, game: Doom | None = None) -> torch.Tensor:
    """The true frames ``(T+1, 3, size, size)`` uint8 of episode ``seed`` under ``actions`` (T,).

    Bit-identical to what :func:`collect` stored for the same seed and actions; with other actions it
    is the future the simulator would have shown. Pass an open ``game`` to replay many sequences fast.
    """
    actions = [int(a) for a in (actions.tolist() if torch.is_tensor(actions) else actions)]
    own = game is None
    game = Doom(size, frame_skip) if own else game
    if (game.size, game.frame_skip) != (size, frame_skip):
        raise ValueError(f"the game renders size={game.size}, frame_skip={game.frame_skip}; asked for {size}, {frame_skip}")
    try:
        screens = [game.start(seed)[0]]
        for t, action in enumerate(actions):
            out = game.step(action)
            if out is None:
                raise ValueError(f"episode {seed} ended after {t + 1} of {len(actions)} actions (the goal was reached)")
            screens.append(out[0])
        return game.to_frames(screens)
    finally:
        if own:
            game.close()
