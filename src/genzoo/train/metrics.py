"""Run logging: one JSON object per line in metrics.jsonl, and the loss curve as a PNG (matplotlib).

metrics.jsonl is appended to while a run goes on, so a kill can leave its last line torn (half written): that
line is dropped with a warning when the file is read or a run resumes. A damaged line anywhere else is an error
naming the file and the line, never skipped silently."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from ..errors import GenzooWarning, RunDirError
from ..figures import save_figure


def read_records(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file ([] when there is none); a torn last line is dropped with a warning."""
    if not path.exists():
        return []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path}: cannot read: {e}") from None
    out = []
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
    for j, (i, line) in enumerate(numbered):
        try:
            rec = json.loads(line)
            if not (isinstance(rec, dict) and isinstance(rec.get("step"), int)):
                raise ValueError("not a record with an integer 'step'")
        except ValueError as e:
            if j == len(numbered) - 1:
                warnings.warn(f"{path}: dropped its torn last line {i} (a kill while it was written?): {line[:60]!r}",
                              GenzooWarning, stacklevel=2)
                break
            raise RunDirError(f"{path}: line {i} is not a metrics record ({e}): {line[:60]!r}") from None
        out.append(rec)
    return out


class MetricsLog:
    def __init__(self, path: Path, resume_step: int = 0, records: list[dict] | None = None):
        """records: the records to keep (already read); otherwise those up to resume_step are kept."""
        self.path = path
        if path.exists() or records:  # on resume keep only the records up to the checkpoint's step
            kept = records if records is not None else [r for r in read_records(path) if r["step"] <= resume_step]
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid():08x}")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
            os.replace(tmp, path)  # a kill here leaves the old file or the new one, never half of one

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        return read_records(self.path)


def plot_losses(records: list[dict], out: Path, title: str, ylabel: str = "cross-entropy (nats/token)") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1.2)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out)
