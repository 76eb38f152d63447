"""Small reproductions of each paper's claim. Each writes report.md, figures (PNG) and results.json.
`EXPERIMENTS` maps a name to a callable `run(out=DIR)`."""

from __future__ import annotations

from ..registry import Registry

EXPERIMENTS: Registry = Registry("experiment")


def _register():
    from . import (  # noqa: F401
        clip_zero_shot,
        dpok,
        fusellm,
        fusion,
        gan_vs_diffusion,
        gato,
        gliner_zero_shot,
        lens_spae,
        meta_transformer,
        moe_locality,
        outliers,
        point_e,
        pointe_rl,
        retrieval_finetune,
        tabular,
    )


_register()
