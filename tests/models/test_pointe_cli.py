"""The shrunken pipeline through the CLI: `genzoo train pointe-shapes` (pointe-tiny, a few steps through both
stages of task 'pointe'), then `genzoo generate RUN --prompt ... --out X.ply` writes a .ply a standard reader
opens, the view and three-angle PNGs, the stage times, and names an unseen word; bad input is one line on stderr."""

import pytest

from tests.train.common import genzoo

TINY = ["--set", "model.preset=pointe-tiny", "--set", "pointe.objects=24", "--set", "pointe.val_objects=4",
        "--set", "pointe.clip_steps=2", "--set", "pointe.render_points=128", "--set", "data.block_size=12",
        "--set", "batch_size=4", "--set", "eval_every=4", "--set", "save_every=4", "--set", "progress=false"]


@pytest.mark.slow
def test_train_then_generate_a_ply(tmp_path):
    plyfile = pytest.importorskip("plyfile")
    run = tmp_path / "run"
    genzoo("train", "pointe-shapes", "--out", str(run), "--steps", "4", *TINY)
    assert (run / "model.safetensors").exists() and (run / "tokenizer.json").exists()
    out = tmp_path / "cube.ply"
    r = genzoo("generate", str(run), "--prompt", "a green blorp cube", "--out", str(out), "--image-steps", "2",
               "--point-steps", "2", "--upsample-steps", "2")
    assert plyfile.PlyData.read(str(out))["vertex"].count == 64  # pointe-tiny: 16 coarse x 4
    assert out.with_suffix(".view.png").exists() and out.with_suffix(".cloud.png").exists()
    assert "text_to_image" in r.stdout and "upsample" in r.stdout and "blorp" in r.stderr
    bad = genzoo("generate", str(run), "--prompt", " ", "--out", str(out), check=False)
    assert bad.returncode != 0 and "non-empty" in bad.stderr and "Traceback" not in bad.stderr
    bad = genzoo("generate", str(run), "--prompt", "a red cone", "--out", str(tmp_path / "x.obj"), check=False)
    assert bad.returncode != 0 and ".ply" in bad.stderr and "Traceback" not in bad.stderr
