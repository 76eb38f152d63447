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
    """DART: with noise the executed actions are perturbed, the recorded ones are still the expert's (pendulum's
    records are its executed actions: `test_record_executed_actions`; here with its labels)."""
    from dataclasses import replace

    for name in ("mountaincar", "pendulum"):
        task = replace(CONTROL.get(name), record_executed=False)
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


def _executed_torques(ep):
    """Pendulum-v1's executed torques, read back from its dynamics (thd' = thd + (15 sin th + 3 u) 0.05), at the steps
    where the speed was not clipped to 8: -> (indices, torques)."""
    c, s, thd = ep.observations[:, 0], ep.observations[:, 1], ep.observations[:, 2]
    th = np.arctan2(s, c)
    u = ((thd[1:] - thd[:-1]) / 0.05 - 15.0 * np.sin(th[:-1])) / 3.0
    ok = np.abs(thd[1:]) < 7.99
    return np.nonzero(ok)[0], u[ok]


def test_pendulum_noise_correlation():
    """A continuous task's execution noise is an AR(1) process with `noise_correlation`: the executed torque minus
    the recorded (expert) one keeps its sign from step to step with rho = 0.9, not with white noise (rho = 0)."""
    from dataclasses import replace

    task = CONTROL.get("pendulum")
    lag1 = {}
    for rho in (0.0, 0.9):
        ep = rollout(replace(task, noise_correlation=rho, record_executed=False), 3, noise=0.2)
        labels = np.stack([task.expert(o) for o in ep.observations])[:, 0]
        assert np.array_equal(ep.actions[:, 0], labels)  # recorded: the expert's clean actions
        i, u = _executed_torques(ep)
        keep = np.abs(u) < 1.99  # not clipped at the torque limit
        i, push = i[keep], (u - labels[i])[keep]
        pairs = np.isin(i + 1, i)
        a, b = push[pairs], push[np.searchsorted(i, i[pairs] + 1)]
        lag1[rho] = float(np.corrcoef(a, b)[0, 1])
    assert abs(lag1[0.0]) < 0.3 and lag1[0.9] > 0.7, lag1


def test_pendulum_actions_survive_their_tokens():
    """The expert's actions mu-law encoded, binned and decoded again (what a perfect imitator would execute) play as
    well as the expert; and the training stream's action token at each step is the action recorded at that step's
    observation (not the previous or the next): the executed one, which moved that observation to the next."""
    import torch

    from genzoo.models.gato.sequence import action_tokens, decode_actions, episode_tokens

    task = CONTROL.get("pendulum")
    spec = task.spec

    def decoded(obs):
        return decode_actions(action_tokens(task.expert(obs)[None], spec, LAYOUT).ids, spec, LAYOUT.vocab)[0].numpy()

    for seed in (EVAL_SEED, EVAL_SEED + 1):
        assert rollout(task, seed, decoded).total == pytest.approx(rollout(task, seed).total, rel=0.02)
    ep = rollout(task, 0, noise=task.train_noise)
    stream = control_stream("pendulum", [0], LAYOUT)
    step = spec.step_tokens(LAYOUT.patch)
    actions = stream.tokens.ids[step - 1::step]  # the last token of each timestep
    assert len(actions) == len(ep) and stream.tokens.kinds[step - 2::step].eq(SEPARATOR).all()
    assert torch.equal(actions, LAYOUT.vocab.continuous(torch.as_tensor(ep.actions))[:, 0])
    i, u = _executed_torques(ep)  # the torque that moved observation t to t + 1 is the action recorded at t
    np.testing.assert_allclose(ep.actions[i, 0], u, atol=2e-3)


def test_record_executed_actions():
    """Pendulum (`record_executed`) records the perturbed actions it executed (read back from the pendulum's
    dynamics), not the expert's; without noise it records the expert's."""
    task = CONTROL.get("pendulum")
    assert task.record_executed
    ep = rollout(task, 3, noise=0.2)
    labels = np.stack([task.expert(o) for o in ep.observations])[:, 0]
    assert not np.allclose(ep.actions[:, 0], labels)
    i, u = _executed_torques(ep)
    np.testing.assert_allclose(ep.actions[i, 0], u, atol=2e-3)
    clean = rollout(task, 3)
    assert np.array_equal(clean.actions[:, 0], np.stack([task.expert(o) for o in clean.observations])[:, 0])


def test_wide_start():
    """`wide_start`: a share of the training episodes start from the task's wider initial states (gymnasium reset
    options), chosen per seed; the expert still succeeds from them; validation and evaluation keep the default
    starts. Unknown tasks, tasks without a wide start and shares outside [0, 1] raise."""
    from genzoo.data.control import expert_episodes, wide_starts
    from genzoo.train.gato_task import check_wide_start_share

    pend = CONTROL.get("pendulum")
    for seed in range(3):  # the same draw from the seed: the same angle, the velocity scaled from +-1 to +-6
        normal, wide = rollout(pend, seed).observations[0], rollout(pend, seed, wide=True).observations[0]
        assert abs(normal[2]) <= 1.0 and np.allclose(wide[:2], normal[:2]) and np.isclose(wide[2], 6 * normal[2])
    speeds = np.array([abs(rollout(pend, s, wide=True).observations[0][2]) for s in range(12)])
    assert speeds.max() > 3.0 and speeds.max() <= 6.0
    cart = CONTROL.get("cartpole")
    starts = np.stack([rollout(cart, s, wide=True).observations[0] for s in range(8)])  # (8, 4)
    assert np.abs(starts).max() > 0.08 and np.abs(starts).max() <= 0.15  # default: within 0.05
    assert min(rollout(cart, s, wide=True).total for s in range(3)) == 500.0  # the expert recovers
    assert rollout(pend, 1, wide=True).total > -400.0

    flags = wide_starts(range(400), 0.25)
    assert 70 <= sum(flags) <= 130 and flags[:50] == wide_starts(range(50), 0.25)  # per seed, reproducible
    assert wide_starts(range(20), 0.0) == [False] * 20 and wide_starts(range(20), 1.0) == [True] * 20
    seeds = range(6)
    mixed = expert_episodes("pendulum", seeds, wide_share=0.5)
    for s, w, ep in zip(seeds, wide_starts(seeds, 0.5), mixed):
        assert np.array_equal(ep.observations[0], rollout(pend, s, wide=w).observations[0])
    plain = control_stream("pendulum", range(3), LAYOUT)  # default: no wide starts
    assert torch.equal(plain.tokens.ids, control_stream("pendulum", range(3), LAYOUT, 0.0).tokens.ids)
    assert not torch.equal(plain.tokens.ids[:20], control_stream("pendulum", range(3), LAYOUT, 1.0).tokens.ids[:20])

    assert check_wide_start_share(None) == {} and check_wide_start_share({"pendulum": 0.5}) == {"pendulum": 0.5}
    with pytest.raises(ConfigError, match="gridworld: the task has no wide start; tasks with one: cartpole, "):
        check_wide_start_share({"gridworld": 0.5})
    with pytest.raises(ConfigError, match=r"wide_start_share.pendulum=1.5 is invalid: a share in \[0, 1\]"):
        check_wide_start_share({"pendulum": 1.5})
    with pytest.raises(ConfigError, match="unknown control task 'pendulm'"):
        check_wide_start_share({"pendulm": 0.5})
    with pytest.raises(ConfigError, match="'gridworld' has no wide start"):
        rollout(CONTROL.get("gridworld"), 0, wide=True)


def test_recipe_wide_start_share_reaches_the_training_episodes(tmp_path):
    """`data.wide_start_share` in a gato recipe: the task's training stream holds the wide-start episodes, its
    validation stream the default ones; a bad share is refused when the task is built."""
    from genzoo.train import load_recipe
    from genzoo.train.distributed import Dist
    from genzoo.train.gato_task import GatoTask

    sets = {"model.preset": "gato-tiny", "data.vocab_size": 300, "data.max_bytes": 100_000, "data.block_size": 64,
            "data.mixture": {"pendulum": 1.0}, "data.episodes": {"pendulum": 4}}
    plain = GatoTask(load_recipe("gato-nano", sets), tmp_path, Dist())
    wide = GatoTask(load_recipe("gato-nano", {**sets, "data.wide_start_share": {"pendulum": 1.0}}), tmp_path, Dist())
    layout = plain.config.layout
    want = control_stream("pendulum", range(4), layout, 1.0).tokens.ids
    assert torch.equal(wide.mixture.streams["pendulum"].tokens.ids, want)
    assert not torch.equal(plain.mixture.streams["pendulum"].tokens.ids, want)
    assert torch.equal(wide.val["pendulum"].ids, plain.val["pendulum"].ids)
    with pytest.raises(ConfigError, match="wide_start_share.gridworld: the task has no wide start"):
        GatoTask(load_recipe("gato-nano", {**sets, "data.wide_start_share": {"gridworld": 0.5}}), tmp_path, Dist())
