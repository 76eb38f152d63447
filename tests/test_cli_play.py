"""`genzoo play`: runs a Gato policy in gymnasium and prints the returns; writes a GIF; clear one-line errors."""

import pytest

import genzoo
from genzoo.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("gato") / "run"
    genzoo.save(genzoo.build("gato-tiny"), d)
    return d


def test_play_prints_returns(run_dir, capsys):
    assert main(["play", str(run_dir), "--env", "CartPole-v1", "--episodes", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("episode 1: return ") and out[1].startswith("episode 2: return ")
    assert out[2].startswith("CartPole-v1: mean return ") and out[2].endswith("over 2 episodes")


@pytest.mark.slow
def test_play_writes_a_gif(run_dir, tmp_path, capsys):
    from PIL import Image

    gif = tmp_path / "grid.gif"
    assert main(["play", str(run_dir), "--env", "genzoo/GridWorld-v0", "--episodes", "1", "--gif", str(gif),
                 "--temperature", "1.0"]) == 0
    with Image.open(gif) as im:
        assert im.size == (64, 64) and im.n_frames >= 2
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--env", "Acrobot-v1"], "unknown environment 'Acrobot-v1'; known: CartPole-v1"),
    (["--env", "CartPole-v1", "--episodes", "0"], "--episodes must be >= 1"),
])
def test_play_errors_are_one_line(run_dir, args, message, capsys):
    assert main(["play", str(run_dir), *args]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_play_refuses_another_model(tmp_path, capsys):
    genzoo.save(genzoo.build("gpt2-tiny"), tmp_path / "gpt")
    assert main(["play", str(tmp_path / "gpt"), "--env", "CartPole-v1"]) == 2
    assert "not a Gato model" in capsys.readouterr().err
