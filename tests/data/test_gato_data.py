"""Gato's data made here: the scripted experts' returns, the grid world, environment lookup errors, the mixture's
windows (prompts, packing, resumable draws) and the evaluation demonstration."""

import numpy as np
import pytest
import torch

from genzoo import ConfigError
from genzoo.data.control import CONTROL, EVAL_SEED, make_env, random_returns, rollout, run_episodes, task_for_env
from genzoo.data.gridworld import GridWorld, grid_expert
from genzoo.data.mixture import Mixture, Stream, check_mixture, control_stream, demonstration, validation_windows
from genzoo.models.gato.sequence import Layout
from genzoo.models.gato.tokens import SEPARATOR, Vocab

LAYOUT = Layout(Vocab(300), patch=4, channels=1, position_bins=16)


@pytest.mark.parametrize("name, at_least", [("cartpole", 500.0), ("mountaincar", -150.0), ("pendulum", -400.0),
                                            ("gridworld", 0.5)])
def test_experts_beat_random(name, at_least):
    task = CONTROL.get(name)
    expert = [rollout(task, EVAL_SEED + i).total for i in range(2)]
    assert min(expert) >= at_least
    assert np.mean(expert) > np.mean(random_returns(name, 2)) + 0.2


def test_grid_world():
    env = GridWorld()
    goals = set()
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        assert obs.shape == (1, 8, 8) and (obs == 255).sum() == 1 and (obs == 128).sum() == 1
        goals.add(tuple(int(v) for v in np.argwhere(obs[0] == 128)[0]))
    assert goals == {(0, 0), (0, 7), (7, 0), (7, 7)}  # the goal is in a corner
    obs, _ = env.reset(seed=3)
    assert env.render().shape == (64, 64, 3)
    done, steps, reward = False, 0, 0.0
    while not done:
        obs, reward, terminated, truncated, _ = env.step(grid_expert(obs))
        done, steps = terminated or truncated, steps + 1
    assert terminated and reward == pytest.approx(1 - 0.9 * steps / 32) and steps <= 14


def test_execution_noise_keeps_the_expert_labels():
    """DART: with noise the executed actions are perturbed, the recorded ones are still the expert's."""
    for name in ("mountaincar", "pendulum"):
        task = CONTROL.get(name)
        clean, noisy = rollout(task, 5), rollout(task, 5, noise=1.0)
        labels = np.stack([np.asarray(task.expert(o)) for o in noisy.observations])
        assert np.array_equal(noisy.actions, labels)
        n = min(len(clean), len(noisy))
        assert not np.allclose(clean.observations[:n], noisy.observations[:n])  # other states were visited


def test_unknown_environment():
    assert task_for_env("CartPole-v1").spec.name == "cartpole" and task_for_env("pendulum").spec.n_actions == 0
    with pytest.raises(ConfigError, match=r"unknown environment 'CartPole-v0' \(did you mean 'CartPole-v1'\?\); "
                                          r"known: CartPole-v1"):
        task_for_env("CartPole-v0")


def test_env_spaces_match_the_specs():
    for name in CONTROL:
        env = make_env(CONTROL.get(name).spec)
        env.close()


def test_run_episodes_in_lockstep():
    task = CONTROL.get("mountaincar")
    calls = []

    def act(obs):
        calls.append(obs.shape)
        return [task.expert(o) for o in obs]

    returns, lengths, _ = run_episodes(task, act, 3)
    assert returns == [rollout(task, EVAL_SEED + i).total for i in range(3)]
    assert len(calls) == max(lengths) and calls[0] == (3, 2)


def test_mixture_windows_and_resume():
    streams = {"cartpole": control_stream("cartpole", range(2), LAYOUT),
               "gridworld": control_stream("gridworld", range(30), LAYOUT)}
    mix = Mixture({"cartpole": 3, "gridworld": 1}, streams, 64, prompt_prob=0.5, seed=7)
    assert mix.weights == {"cartpole": 0.75, "gridworld": 0.25}
    batch, tasks = mix.batch(5, 16)
    assert batch.ids.shape == (16, 64) and len(tasks) == 16
    again, tasks2 = mix.batch(5, 16)  # a batch is a function of (seed, position): exact resume
    assert torch.equal(batch.ids, again.ids) and torch.equal(batch.patches, again.patches) and tasks == tasks2
    assert not torch.equal(mix.batch(6, 16)[0].ids, batch.ids)
    counts = {k: 0 for k in mix.weights}
    for p in range(20):
        for t in mix.batch(p, 16)[1]:
            counts[t] += 1
    assert 0.6 < counts["cartpole"] / 320 < 0.9
    for row, task in zip(range(16), tasks):  # every window starts at a timestep: observation tokens first
        step = 6
        assert batch.local[row, 0] == 0 and batch.kinds[row, step - 2] == SEPARATOR
    # a prompt of whole timesteps: the separators keep the timestep rhythm across the prompt / body seam
    cart = [r for r, t in enumerate(tasks) if t == "cartpole"]
    sep = (batch.kinds[cart] == SEPARATOR).nonzero()[:, 1] % 6
    assert bool((sep == 4).all())


def test_mixture_errors():
    with pytest.raises(ConfigError, match="unknown task 'cartpol' \\(did you mean 'cartpole'"):
        check_mixture({"cartpol": 1.0})
    with pytest.raises(ConfigError, match="data.mixture.text=-1 is invalid"):
        check_mixture({"text": -1})
    with pytest.raises(ConfigError, match="empty"):
        check_mixture({})
    stream = Stream(control_stream("cartpole", range(1), LAYOUT).tokens.window(0, 30), torch.arange(0, 30, 6))
    with pytest.raises(ConfigError, match="fewer than one window of 64"):
        Mixture({"cartpole": 1.0}, {"cartpole": stream}, 64)
    with pytest.raises(ConfigError, match="holds no window of 64"):
        validation_windows(stream, 64, 4)


def test_demonstration_prompt():
    p = demonstration("gridworld", LAYOUT, 40)  # grid episodes are short: several are joined
    assert len(p) == 36 and bool(p.target[5::6].all()) and p.local[0] == 0
    assert torch.equal(p.ids, demonstration("gridworld", LAYOUT, 40).ids)
    with pytest.raises(ConfigError, match="holds no timestep"):
        demonstration("cartpole", LAYOUT, 4)
