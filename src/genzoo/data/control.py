"""Control episodes generated here: gymnasium's classic-control environments (and `gridworld`'s image world)
driven by scripted experts. Nothing is downloaded; an episode is a function of its seed.

| task        | environment          | observation            | action                    | expert                    |
|-------------|----------------------|------------------------|---------------------------|---------------------------|
| cartpole    | CartPole-v1          | 4 continuous values    | discrete, 2               | linear state feedback     |
| pendulum    | Pendulum-v1          | 3 continuous values    | continuous, 1 in [-2, 2]  | energy swing-up + PD      |
| mountaincar | MountainCar-v0       | 2 continuous values    | discrete, 3               | push along the velocity   |
| gridworld   | genzoo/GridWorld-v0  | 8 x 8 greyscale frame  | discrete, 4 moves         | shortest path             |

`CONTROL` maps a task name to its `ControlTask` (the `ControlSpec` that tokenises it, the expert, the episodes
the mixture trains on); `task_for_env` finds one by gymnasium id and names the known ones otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError
from ..models.gato.sequence import ControlSpec
from ..registry import Registry, nearest


def cartpole_expert(obs: np.ndarray) -> int:
    """Push right when 0.1 x + 0.5 x' + 10 theta + 2 theta' > 0 (a hand-tuned linear state feedback)."""
    x, xd, th, thd = (float(v) for v in obs)
    return int(0.1 * x + 0.5 * xd + 10.0 * th + 2.0 * thd > 0)


def pendulum_expert(obs: np.ndarray) -> np.ndarray:
    """Energy-shaping swing-up (Astrom & Furuta, 2000): u = -k (E - E_top) sgn(theta'), with the pendulum's energy
    relative to upright E - E_top = theta'^2 / 6 + 5 (cos theta - 1) (gymnasium's m = l = 1, g = 10); a PD
    controller u = -(12 theta + 2.5 theta') once cos theta > 0.85. Clipped to the torque limit 2."""
    c, s, thd = (float(v) for v in obs)
    th = math.atan2(s, c)
    if c > 0.85:
        u = -(12.0 * th + 2.5 * thd)
    else:
        energy = thd * thd / 6.0 + 5.0 * (c - 1.0)
        u = -1.5 * energy * (1.0 if thd >= 0 else -1.0)
    return np.array([min(max(u, -2.0), 2.0)], dtype=np.float32)


def mountaincar_expert(obs: np.ndarray) -> int:
    """Push in the direction of the velocity (builds up the swing; reaches the flag in about 120 steps)."""
    return 2 if float(obs[1]) >= 0 else 0


def _grid_expert(obs):
    from .gridworld import grid_expert

    return grid_expert(obs)


@dataclass(frozen=True)
class ControlTask:
    spec: ControlSpec
    expert: Callable[[np.ndarray], object]
    train_episodes: int  # expert episodes the mixture trains on (seeds 0..n-1)
    train_noise: float = 0.0  # the training episodes' execution noise (`rollout`): DART, Laskey et al., 2017
    noise_correlation: float = 0.0  # continuous actions: the noise's step-to-step correlation (`rollout`)
    record_executed: bool = False  # the training episodes record the executed (noisy) actions (`rollout`)
    # the wider initial-state distribution (gymnasium reset options) that a share of the training episodes start
    # from when a recipe asks (`data.wide_start_share`, `wide_starts`); None: the task has none
    wide_start: dict | None = None


CONTROL: Registry = Registry("control task")
CONTROL.register("cartpole", ControlTask(
    ControlSpec("cartpole", "CartPole-v1", "continuous", (4,), "discrete", n_actions=2), cartpole_expert, 40, 0.1,
    wide_start={"low": -0.15, "high": 0.15}))  # every state variable in +-0.15 (default +-0.05; the pole falls at 0.21)
CONTROL.register("pendulum", ControlTask(
    ControlSpec("pendulum", "Pendulum-v1", "continuous", (3,), "continuous", action_dims=1, action_low=(-2.0,),
                action_high=(2.0,)), pendulum_expert, 200, 0.45, record_executed=True,  # 0.2, 0.3: lower scores
    wide_start={"x_init": math.pi, "y_init": 6.0}))  # any angle, angular velocity in +-6 (default +-1; the limit is 8)
CONTROL.register("mountaincar", ControlTask(
    ControlSpec("mountaincar", "MountainCar-v0", "continuous", (2,), "discrete", n_actions=3), mountaincar_expert,
    100, 0.1, wide_start={"low": -1.1, "high": 0.3}))  # the car anywhere left of 0.3 (default -0.6..-0.4)
CONTROL.register("gridworld", ControlTask(
    ControlSpec("gridworld", "genzoo/GridWorld-v0", "image", (1, 8, 8), "discrete", n_actions=4,
                pixel_range=(-255.0, 255.0)), _grid_expert, 1500, 0.2))

EVAL_SEED = 1_000_000  # evaluation episodes use seeds from here on, never trained on
PROMPT_SEED = 2_000_000  # the demonstrations that prompt the policy at evaluation


def task_for_env(env_id: str) -> ControlTask:
    """The control task of a gymnasium id (or of a task name); an unknown one raises ConfigError naming the known."""
    for name in CONTROL:
        task = CONTROL.get(name)
        if env_id in (task.spec.env_id, name):
            return task
    known = [CONTROL.get(n).spec.env_id for n in CONTROL]
    raise ConfigError(f"unknown environment {env_id!r}{nearest(env_id, known)}; known: {', '.join(known)}")


def make_env(spec: ControlSpec, render_mode: str | None = None):
    """The gymnasium environment of a spec; its spaces are checked against the spec."""
    try:
        import gymnasium as gym
    except ImportError:
        raise ConfigError("control tasks need gymnasium: pip install 'genzoo[gato]'") from None
    from . import gridworld  # noqa: F401  (registers genzoo/GridWorld-v0)

    env = gym.make(spec.env_id, render_mode=render_mode)
    obs_shape = tuple(env.observation_space.shape)
    if obs_shape != tuple(spec.obs_shape):
        raise ConfigError(f"{spec.env_id} observes shape {obs_shape}; the task spec says {tuple(spec.obs_shape)}")
    space = env.action_space
    if spec.action == "discrete" and getattr(space, "n", None) != spec.n_actions:
        raise ConfigError(f"{spec.env_id} has action space {space}; the task spec says Discrete({spec.n_actions})")
    if spec.action == "continuous" and tuple(space.shape) != (spec.action_dims,):
        raise ConfigError(f"{spec.env_id} has action space {space}; the task spec says {spec.action_dims} values")
    return env


def env_action(spec: ControlSpec, action):
    """A policy's action as the environment takes it: an int, or a float32 vector."""
    if spec.action == "discrete":
        return int(action)
    return np.asarray(action, dtype=np.float32).reshape(spec.action_dims)


@dataclass
class Episode:
    observations: np.ndarray  # (N, *obs_shape)
    actions: np.ndarray  # (N,) or (N, A)
    total: float  # the return

    def __len__(self) -> int:
        return len(self.actions)


def wide_start_tasks() -> list[str]:
    """The control tasks that have a wider initial-state distribution (`ControlTask.wide_start`)."""
    return [n for n in CONTROL if CONTROL.get(n).wide_start is not None]


def wide_starts(seeds, share: float) -> list[bool]:
    """Which episodes (by seed) start from the task's wider initial states: each with probability `share`, drawn from
    its seed alone (so a seed's episode is the same whatever other seeds are collected with it)."""
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"wide_start_share={share!r} is invalid: a share in [0, 1]")
    return [bool(np.random.default_rng(int(s) + 104_729).random() < share) for s in seeds]


def rollout(task: ControlTask, seed: int, policy: Callable | None = None, noise: float = 0.0,
            wide: bool = False) -> Episode:
    """One episode from reset(seed) with `policy` (default: the expert); the return is the sum of rewards.

    wide: start from the task's wider initial-state distribution (`ControlTask.wide_start`, gymnasium's reset
    options), so the episode holds the expert recovering from states the default starts rarely reach (a pendulum
    spinning fast, a cart pole leaning far): states an imitator's own errors lead it to.

    noise > 0 records the policy's actions but executes perturbed ones (DART, Laskey et al., 2017, "Disturbances for
    Augmenting Robot Trajectories"): a uniformly random action with probability `noise` (discrete), or Gaussian
    noise of standard deviation `noise` times the half range, clipped (continuous). The episodes then hold states
    off the expert's own path, labelled with what the expert does there, and the next label depends on the state
    more than on the previous label (a policy that copies its last action, the copycat problem of behaviour cloning,
    fits worse). A continuous task's `noise_correlation` rho makes the noise an AR(1) (Ornstein-Uhlenbeck) process,
    n_t = rho n_(t-1) + sqrt(1 - rho^2) noise e_t, of the same standard deviation: white noise averages out over
    the few steps a pendulum integrates it, a correlated push drives the state where an imitator's biased errors
    drive it (too much energy, an overshoot past the top), and the labels there show the expert's recovery.

    A task's `record_executed` records the executed actions instead: the episode is then what a noisy expert did,
    and with white noise the previous action in a policy's context is the expert's plus noise that says nothing of
    the next one. A behaviour cloner of clean labels sees a label sequence so smooth that the previous
    action predicts the next one (and copies its own mistakes at evaluation); on noisy records copying costs twice
    the noise variance, predicting from the state costs it once, and the expected value of the predicted
    distribution (`GatoAgent(continuous="mean")`) is the expert's action again (pulled inward near the action
    limits, where the executed action was clipped)."""
    env = make_env(task.spec)
    spec, policy = task.spec, policy or task.expert
    rng = np.random.default_rng(seed + 7919)
    if wide and task.wide_start is None:
        raise ConfigError(f"control task {spec.name!r} has no wide start; tasks with one: "
                          f"{', '.join(wide_start_tasks())}")
    obs, _ = env.reset(seed=seed, options=dict(task.wide_start) if wide else None)
    observations, actions, total, done = [], [], 0.0, False
    rho = task.noise_correlation
    push = np.zeros(len(spec.action_low)) if spec.action == "continuous" else None  # the AR(1) noise state
    while not done:
        a = policy(obs)
        observations.append(obs)
        actions.append(a)
        run = a
        if noise and spec.action == "discrete" and rng.random() < noise:
            run = int(rng.integers(spec.n_actions))
        elif noise and spec.action == "continuous":
            lo, hi = np.asarray(spec.action_low), np.asarray(spec.action_high)
            push = rho * push + np.sqrt(1.0 - rho * rho) * noise * (hi - lo) / 2 * rng.standard_normal(len(lo))
            run = np.clip(np.asarray(a) + push, lo, hi)
        if task.record_executed:
            actions[-1] = run
        obs, r, terminated, truncated, _ = env.step(env_action(spec, run))
        total += float(r)
        done = terminated or truncated
    env.close()
    return Episode(np.stack(observations), np.stack([np.asarray(a) for a in actions]), total)


def expert_episodes(name: str, seeds, noise: float = 0.0, wide_share: float = 0.0) -> list[Episode]:
    """Expert episodes of the seeds; a `wide_share` of them (`wide_starts`) start from the task's wider states."""
    task = CONTROL.get(name)
    seeds = [int(s) for s in seeds]
    wide = wide_starts(seeds, wide_share) if wide_share else [False] * len(seeds)
    return [rollout(task, s, noise=noise, wide=w) for s, w in zip(seeds, wide)]


def random_returns(name: str, n: int, seed: int = EVAL_SEED) -> list[float]:
    """Returns of the uniformly random policy on the evaluation seeds (the 0% of the normalised score)."""
    task = CONTROL.get(name)
    rng = np.random.default_rng(seed)
    spec = task.spec

    def policy(_obs):
        if spec.action == "discrete":
            return int(rng.integers(spec.n_actions))
        return rng.uniform(spec.action_low, spec.action_high).astype(np.float32)

    return [rollout(task, seed + i, policy).total for i in range(n)]


def run_episodes(task: ControlTask, act: Callable, episodes: int, seed: int = EVAL_SEED,
                 render: int = 0) -> tuple[list[float], list[int], list[np.ndarray]]:
    """`episodes` environments (seeds seed..seed+n-1) stepped in lockstep by a batched policy
    act(observations (B, *obs_shape)) -> actions (B, ...); an environment that has finished is no longer stepped
    (its last observation is still passed). -> (returns, lengths, the first `render` RGB frames of episode 0)."""
    spec = task.spec
    envs = [make_env(spec, render_mode="rgb_array" if render and i == 0 else None) for i in range(episodes)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    totals, lengths, done = [0.0] * episodes, [0] * episodes, [False] * episodes
    frames = [envs[0].render()] if render else []
    while not all(done):
        actions = act(np.stack(obs))
        for i, env in enumerate(envs):
            if done[i]:
                continue
            obs[i], r, terminated, truncated, _ = env.step(env_action(spec, actions[i]))
            totals[i] += float(r)
            lengths[i] += 1
            done[i] = terminated or truncated
            if i == 0 and len(frames) < render:
                frames.append(env.render())
    for env in envs:
        env.close()
    return totals, lengths, frames
