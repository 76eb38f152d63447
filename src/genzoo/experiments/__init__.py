"""Small reproductions of each paper's claim. Each writes report.md, figures (PNG) and results.json.
`EXPERIMENTS` maps a name to a callable `run(out=DIR)`."""

from __future__ import annotations

from ..registry import Registry

EXPERIMENTS: Registry = Registry("experiment")


def _register():
    from . import clip_zero_shot, dpok, fusellm, moe_locality, outliers, point_e, retrieval_finetune  # noqa: F401


_register()
