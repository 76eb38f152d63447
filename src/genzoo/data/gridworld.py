"""A grid world with image observations, made here: an agent (anywhere) and a goal (in one of the four corners) on
an 8 x 8 grid, observed as an 8 x 8 greyscale frame (one pixel per cell: background 0, goal 128, agent 255). Four moves (up, down, left, right); the
episode ends at the goal with reward 1 - 0.9 * steps / max_steps (MiniGrid's), or after max_steps with 0. The task
spec reads the pixels as the range [-255, 255], so that the background is 0 after Gato's normalisation (a blank
patch then embeds near zero; with background = -1 the shared blank-patch vector drowned agent and goal).
The expert walks to the goal's row, then to its column (a shortest path)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right as (row, col) steps
BACKGROUND, GOAL, AGENT = 0, 128, 255
COLOURS = {BACKGROUND: (235, 235, 235), GOAL: (40, 170, 60), AGENT: (210, 50, 40)}


class GridWorld(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, size: int = 8, max_steps: int = 32, render_mode: str | None = None):
        self.size, self.max_steps, self.render_mode = size, max_steps, render_mode
        self.observation_space = gym.spaces.Box(0, 255, (1, size, size), dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self.agent = self.goal = (0, 0)
        self.steps = 0

    def frame(self) -> np.ndarray:
        """The observation: (1, size, size) uint8."""
        f = np.full((1, self.size, self.size), BACKGROUND, dtype=np.uint8)
        f[0, self.goal[0], self.goal[1]] = GOAL
        f[0, self.agent[0], self.agent[1]] = AGENT
        return f

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        n = self.size - 1
        corners = [(0, 0), (0, n), (n, 0), (n, n)]
        self.goal = corners[int(self.np_random.integers(4))]
        while True:  # the agent starts anywhere but on the goal
            self.agent = divmod(int(self.np_random.integers(self.size * self.size)), self.size)
            if self.agent != self.goal:
                break
        self.steps = 0
        return self.frame(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is outside Discrete(4)")
        dr, dc = MOVES[int(action)]
        r, c = self.agent
        self.agent = (min(max(r + dr, 0), self.size - 1), min(max(c + dc, 0), self.size - 1))
        self.steps += 1
        reached = self.agent == self.goal
        reward = 1.0 - 0.9 * self.steps / self.max_steps if reached else 0.0
        return self.frame(), reward, reached, self.steps >= self.max_steps and not reached, {}

    def render(self) -> np.ndarray:
        """An RGB frame (8 px per cell): (size * 8, size * 8, 3) uint8."""
        f = self.frame()[0]
        rgb = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        for value, colour in COLOURS.items():
            rgb[f == value] = colour
        return np.kron(rgb, np.ones((8, 8, 1), dtype=np.uint8))


def grid_expert(obs: np.ndarray) -> int:
    """A shortest path: up or down to the goal's row, then left or right to its column."""
    f = obs[0]
    (ar,), (ac,) = np.nonzero(f == AGENT)
    goal = np.nonzero(f == GOAL)
    if not len(goal[0]):  # on the goal
        return 0
    dr, dc = int(goal[0][0]) - int(ar), int(goal[1][0]) - int(ac)
    if dr:
        return 1 if dr > 0 else 0
    return 3 if dc > 0 else 2


ENV_ID = "genzoo/GridWorld-v0"
if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=GridWorld, disable_env_checker=True)
