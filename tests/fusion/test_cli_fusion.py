"""The fusion commands: recipes and experiments are listed; missing parts, an unknown modality data set and a bad
--steps are one clear line on stderr and a non-zero exit status, before any training."""

import pytest

from tests.train.common import genzoo


def test_listed():
    out = genzoo("list").stdout
    for name in ("vq-digits", "digit-lm", "early-fusion-digits", "late-fusion-digits", "meta-transformer", "fusion"):
        assert name in out


@pytest.mark.parametrize("args,message", [
    (["train", "early-fusion-digits"], "needs parts.image_tokenizer"),
    (["train", "late-fusion-digits"], "needs parts.vision"),
    (["train", "meta-transformer", "--set", "data.corpus=smells"], "unknown modality data set 'smells'"),
    (["experiment", "fusion", "--steps", "0"], "--steps: must be a positive integer, got 0"),
])
def test_errors_are_one_line(args, message, tmp_path):
    extra = ["--out", str(tmp_path / "run")] if args[0] == "train" else []
    r = genzoo(*args, *extra, check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()
