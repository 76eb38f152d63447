"""`genzoo experiment point-e`: Point-E (arXiv 2212.08751) in small, on procedural shapes. Trains the recipe
`pointe-shapes` (CLIP, then text -> 16x16 view, view -> 64 points, + upsampler -> 256 points, and the text ->
points baseline), then judges generated clouds with a frozen PointNet trained here on procedural clouds (never
optimised against):

- R-precision analogue (paper sec. 5.1 uses CLIP R-precision on renders): the fraction of clouds whose shape AND
  colour, read back by the PointNet, are the ones the prompt asks for; at guidance 1 and 3, prompts "a {colour}
  {shape}" for every shape x colour.
- P-FID analogue: the Fréchet distance in the PointNet's global features between the generated fine clouds and
  fresh training-distribution clouds of the same prompts; against a "blob" baseline (a Gaussian blob of the right
  colour and spread per prompt) and against a second set of real clouds (the floor).
- The image-conditioned route (text -> view -> points) against the point model conditioned on CLIP's text tokens
  directly (both at guidance 3), and the end-to-end seconds per sample.

The RL practices of the issue (item 6) are a separate experiment: `genzoo experiment pointe-rl`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from . import EXPERIMENTS
from .results import machine_line

SMALL_SETS = ("model.preset=pointe-tiny", "pointe.objects=64", "pointe.val_objects=8", "pointe.clip_steps=3",
              "pointe.render_points=256", "data.block_size=12", "batch_size=8", "eval_every=1000",
              "save_every=1000", "progress=false", "log_every=1")


def blobs(shape_idx: torch.Tensor, colour_idx: torch.Tensor, n_points: int, spread: torch.Tensor,
          generator: torch.Generator) -> torch.Tensor:
    """The baseline: per prompt, a Gaussian blob (per-axis std `spread` (3,), in channels) of the named colour ->
    (B, 6, n_points). It knows the colour and the overall extent, nothing about the shape."""
    from ..data.shapes import COLOUR_NAMES, COLOURS

    b = len(shape_idx)
    xyz = torch.randn(b, 3, n_points, generator=generator) * spread.view(1, 3, 1)
    rgb = torch.tensor([COLOURS[COLOUR_NAMES[int(c)]] for c in colour_idx])  # (B, 3) in [0, 1]
    return torch.cat([xyz.clamp(-1, 1), (2 * rgb - 1)[:, :, None].expand(b, 3, n_points)], dim=1)


def real_clouds(shape_idx, colour_idx, n_points: int, seed: int) -> torch.Tensor:
    """Fresh procedural clouds (random size, pose, yaw) of the given shapes and colours: (B, 6, n_points)."""
    from ..data.shapes import random_objects, surface, to_channels

    g = torch.Generator().manual_seed(seed)
    objs = random_objects(len(shape_idx), g, shape=shape_idx, colour=colour_idx)
    pts, _ = surface(objs, n_points, g)
    return to_channels(pts, objs.rgb)


@EXPERIMENTS.register("point-e")
def run(out: str, small: bool = False, steps: int | None = None, sets: tuple[str, ...] = (),
        samples_per_prompt: int | None = None) -> dict:
    import genzoo
    from ..data.shapes import COLOUR_NAMES, SHAPE_NAMES
    from ..models.pointe.judge import p_fid, point_judge, r_precision, read_clouds
    from ..train import load_recipe, train
    from .results import target, targets_markdown, write_report, write_results

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = load_recipe("pointe-shapes", [*(SMALL_SETS if small else ()), *sets])
    if small and steps is None:
        steps = 6
    run_dir = out / "run"
    t_train = time.perf_counter()
    if not (run_dir / "model.safetensors").exists():
        train(recipe, run_dir, steps=steps)
    train_seconds = time.perf_counter() - t_train
    model = genzoo.load(run_dir).eval()
    t_judge = time.perf_counter()
    judge = point_judge(steps=400 if small else 1000)  # trained once per process, before any timing
    judge_seconds = time.perf_counter() - t_judge

    n = samples_per_prompt or (1 if small else 4)
    combos = [(s, c) for s in range(len(SHAPE_NAMES)) for c in range(len(COLOUR_NAMES))]
    if small:
        combos = combos[::7][:6]
    shape_idx = torch.tensor([s for s, _ in combos for _ in range(n)])
    colour_idx = torch.tensor([c for _, c in combos for _ in range(n)])
    prompts = [f"a {COLOUR_NAMES[int(c)]} {SHAPE_NAMES[int(s)]}" for s, c in zip(shape_idx, colour_idx)]
    steps_kw = dict(image_steps=4, point_steps=4, upsample_steps=2) if small else {}
    fine = model.config.fine_points

    arms, outs = {}, {}
    for name, route, w in (("image_g1", "image", 1.0), ("image_g3", "image", 3.0), ("text_g3", "text", 3.0)):
        r = model.generate_point_cloud(prompts, guidance_scale=w, route=route, seed=0, **steps_kw)
        outs[name] = r
        arms[name] = {"route": route, "guidance": w,
                      "r_precision": r_precision(read_clouds(r.clouds, judge), shape_idx, colour_idx),
                      "r_precision_coarse": r_precision(read_clouds(r.coarse, judge), shape_idx, colour_idx),
                      "seconds_per_sample": sum(r.seconds.values()) / len(prompts),
                      "stage_seconds": {k: v for k, v in r.seconds.items()}}
    reference = real_clouds(shape_idx, colour_idx, fine, seed=1)
    second_real = real_clouds(shape_idx, colour_idx, fine, seed=2)
    spread = reference[:, :3].transpose(0, 1).reshape(3, -1).std(dim=1)  # per-axis std of real points
    blob = blobs(shape_idx, colour_idx, fine, spread, torch.Generator().manual_seed(3))
    fid = {name: p_fid(o.clouds, reference, judge) for name, o in outs.items()}
    fid["blob"] = p_fid(blob, reference, judge)
    fid["real"] = p_fid(second_real, reference, judge)
    judge_real = r_precision(read_clouds(second_real, judge), shape_idx, colour_idx)
    judge_blob = r_precision(read_clouds(blob, judge), shape_idx, colour_idx)

    g1, g3 = arms["image_g1"]["r_precision"], arms["image_g3"]["r_precision"]
    results = {
        "small": small, "recipe": recipe.to_dict(), "prompts": len(prompts), "samples_per_prompt": n,
        "points": {"coarse": model.config.points, "fine": fine}, "arms": arms, "p_fid": fid,
        "judge_r_precision_on_real_clouds": judge_real, "judge_r_precision_on_blobs": judge_blob,
        "train_seconds": train_seconds, "judge_seconds": judge_seconds, "judge_steps": 400 if small else 1000,
        "end_to_end_seconds_per_sample": arms["image_g3"]["seconds_per_sample"],
        "rl_practices": "a separate experiment: genzoo experiment pointe-rl",
    }
    targets = {
        "R-precision, image route, guidance 3": target(g3, ">= 0.8"),
        "R-precision gain of guidance 3 over guidance 1": target(g3 - g1, ">= 0.1"),
        "P-FID (guidance 3) / P-FID (blob baseline)": target(fid["image_g3"] / max(fid["blob"], 1e-12), "<= 0.25"),
    }
    data = write_results(out, results, targets, time.perf_counter() - t0)
    figures(outs, prompts, arms, fid, out)
    write_report(out, report(data, targets_markdown(targets), recipe))
    print(f"wrote {out / 'report.md'}, {out / 'samples.png'}, {out / 'r_precision.png'}, {out / 'results.json'}")
    return data


def figures(outs: dict, prompts: list[str], arms: dict, fid: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..data.shapes import from_channels
    from ..figures import save_figure

    picks = list(dict.fromkeys(range(0, len(prompts), max(1, len(prompts) // 6))))[:6]
    r = outs["image_g3"]
    fig = plt.figure(figsize=(2.2 * len(picks), 4.6), dpi=100)
    for j, i in enumerate(picks):
        ax = fig.add_subplot(2, len(picks), j + 1)
        ax.imshow(((r.views[i].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(prompts[i], fontsize=8)
        xyz, rgb = from_channels(r.clouds[i : i + 1])
        ax = fig.add_subplot(2, len(picks), len(picks) + j + 1, projection="3d")
        ax.scatter(xyz[0, :, 0], xyz[0, :, 2], xyz[0, :, 1], c=rgb[0].numpy(), s=4, depthshade=False)
        ax.view_init(elev=25, azim=35)
        for lim in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            lim(-0.5, 0.5)
        ax.set_axis_off()
    fig.suptitle("text -> view (top) -> point cloud (bottom), guidance 3", fontsize=9)
    save_figure(fig, out / "samples.png")

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    names = list(arms)
    a.bar(names, [arms[k]["r_precision"] for k in names], color=["#999", "#2a6", "#26a"])
    a.axhline(0.8, ls="--", c="k", lw=0.8)
    a.set_ylim(0, 1)
    a.set_ylabel("R-precision (PointNet judge)")
    keys = [*names, "blob", "real"]
    b.bar(keys, [fid[k] for k in keys], color=["#999", "#2a6", "#26a", "#c63", "#555"])
    b.set_ylabel("P-FID analogue (lower is better)")
    b.set_yscale("log")
    fig.tight_layout()
    save_figure(fig, out / "r_precision.png")


def report(r: dict, targets_md: str, recipe) -> str:
    arms, fid = r["arms"], r["p_fid"]
    lines = [
        "# Point-E on procedural shapes: text -> view -> point cloud",
        "",
        f"Recipe `pointe-shapes`{' (shrunken test settings)' if r['small'] else ''}: {recipe.steps} steps "
        f"(CLIP alone for the first {recipe.pointe.get('clip_steps', 300)}), batch {recipe.batch_size}; "
        f"{r['points']['coarse']} coarse -> {r['points']['fine']} points. {r['prompts']} prompts "
        f"('a {{colour}} {{shape}}', {r['samples_per_prompt']} per shape x colour). Judge: a PointNet trained on "
        "procedural clouds (frozen).",
        "",
        "| arm | guidance | R-precision (fine) | R-precision (coarse) | P-FID | s / sample |",
        "|---|---|---|---|---|---|",
        *[f"| {k} ({a['route']} route) | {a['guidance']:g} | {a['r_precision']:.3f} | {a['r_precision_coarse']:.3f} "
          f"| {fid[k]:.4g} | {a['seconds_per_sample']:.3f} |" for k, a in arms.items()],
        f"| blob baseline | - | {r['judge_r_precision_on_blobs']:.3f} | - | {fid['blob']:.4g} | - |",
        f"| real clouds (floor) | - | {r['judge_r_precision_on_real_clouds']:.3f} | - | {fid['real']:.4g} | - |",
        "",
        "Stage seconds (guidance 3, image route, whole batch): "
        + ", ".join(f"{k} {v:.2f}" for k, v in arms["image_g3"]["stage_seconds"].items()) + ".",
        "",
        targets_md,
        "",
        "The RL practices of issue item 6 (contrastive-prompt advantage normalisation, LM-synthesised prompts, the "
        "textual-inconsistency penalty) are a separate experiment: `genzoo experiment pointe-rl`.",
        "",
        f"{machine_line(r)} Training {r['train_seconds']:.0f} s, judge {r['judge_seconds']:.0f} s.",
        "",
        "![samples](samples.png)",
        "",
        "![R-precision and P-FID](r_precision.png)",
        "",
    ]
    return "\n".join(lines)
