"""FuseConfig: the options of a FuseLLM run (the `fuse:` block of a recipe), checked when the recipe is read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..config import check
from ..errors import ConfigError
from ..registry import nearest


@dataclass
class FuseConfig:
    shards: str | None = None  # the precomputed directory (`genzoo fuse` writes OUT/topk and sets this)
    method: str = "min-ce"  # fusion.FUSIONS: "min-ce" (MinCE), "avg-ce" (AvgCE), "none" (CLM only)
    lam: float = 0.9  # loss = lam * CLM + (1 - lam) * CE(target, fused)
    temperature: float = 1.0  # AvgCE's weights softmax(-CE / temperature): 1 is the paper's AvgCE, lower is sharper
    top_k: int = 10  # entries kept of each source's next-token distribution
    align: str = "mined"  # align.ALIGNMENTS: "mined" (MinED vocabulary mapping) or "exact"
    max_chars: int | None = None  # characters per sequence at most (None: 4 * data.block_size)
    shard_size: int = 256  # sequences per safetensors shard

    def __post_init__(self):
        from .align import ALIGNMENTS
        from .fusion import FUSIONS

        FUSIONS.get(self.method)
        ALIGNMENTS.get(self.align)
        check(isinstance(self.lam, (int, float)) and not isinstance(self.lam, bool) and 0.0 <= self.lam <= 1.0,
              "fuse.lam", self.lam, "a number in [0, 1]")
        check(isinstance(self.temperature, (int, float)) and not isinstance(self.temperature, bool)
              and self.temperature > 0, "fuse.temperature", self.temperature, "a positive number")
        for name in ("top_k", "shard_size"):
            v = getattr(self, name)
            check(isinstance(v, int) and not isinstance(v, bool) and v > 0, f"fuse.{name}", v, "a positive integer")
        check(self.max_chars is None or (isinstance(self.max_chars, int) and self.max_chars > 0), "fuse.max_chars",
              self.max_chars, "None or a positive integer")
        check(self.shards is None or isinstance(self.shards, str), "fuse.shards", self.shards, "a directory path")

    @classmethod
    def from_dict(cls, data: dict) -> "FuseConfig":
        names = [f.name for f in fields(cls)]
        for k in data:
            if k not in names:
                raise ConfigError(f"unknown key fuse.{k}{nearest(k, names)}; keys: {', '.join(names)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)
