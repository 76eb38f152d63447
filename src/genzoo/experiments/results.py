"""results.json, the same for every experiment: the figures, a ``"targets"`` object (each target the issue names,
as ``{"value", "target", "met"}``), the machine it ran on and its wall-clock seconds.

    targets = {"seen_f1": target(0.91, ">= 0.85"), "held_out_f1": target(0.31, ">= 0.35")}
    write_results(out, {"per_type": ...}, targets, seconds=time.perf_counter() - t0)

A missed target is written as missed (``"met": false``), never dropped or loosened.
"""

from __future__ import annotations

import json
import math
import operator
import os
import platform
from pathlib import Path

import torch

from ..errors import ConfigError
from ..machine import cpu_model, load_average

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


def machine() -> dict:
    """The machine a figure was measured on: CPU model, cores, torch threads, GPU (if any), torch version."""
    out = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "torch": torch.__version__, "system": platform.system()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    load = load_average()
    if load is not None:
        out["load_average_1min"] = round(load, 2)
    return out


def machine_line(data: dict) -> str:
    """The report's line on where and how long: "Machine: CPU, N cores, T torch threads, torch V, load average L;
    S s in all." from a results.json's `machine` and `seconds` (older files may lack threads or load)."""
    m = data["machine"]
    parts = [m.get("cpu", "?"), f"{m.get('cores', '?')} cores"]
    if "torch_threads" in m:
        parts.append(f"{m['torch_threads']} torch thread" + ("" if m["torch_threads"] == 1 else "s"))
    if "gpu" in m:
        parts.append(m["gpu"])
    if "torch" in m:
        parts.append(f"torch {m['torch']}")
    parts.append(f"load average {m.get('load_average_1min', 'n/a')}")
    return f"Machine: {', '.join(parts)}; {data['seconds']:.0f} s in all."


def target(value, rule: str) -> dict:
    """One target: `value` against `rule` ("OP NUMBER", OP one of >=, <=, >, <, ==), e.g. target(0.91, ">= 0.85").
    A boolean value takes the rule "== true" / "== false". A value that is None or NaN has not been met."""
    parts = rule.split()
    if len(parts) != 2 or parts[0] not in _OPS:
        raise ConfigError(f"target rule {rule!r} is invalid: 'OP NUMBER' with OP one of {', '.join(_OPS)}")
    op, raw = _OPS[parts[0]], parts[1]
    if raw in ("true", "false"):
        threshold = raw == "true"
        met = isinstance(value, bool) and op(value, threshold)
    else:
        threshold = float(raw)
        met = (value is not None and not isinstance(value, bool) and not math.isnan(float(value))
               and bool(op(float(value), threshold)))
    return {"value": value, "target": rule, "met": bool(met)}


def write_results(out: str | Path, results: dict, targets: dict[str, dict], seconds: float) -> dict:
    """Write out/results.json: `results` plus "targets", "machine" and "seconds". Returns what was written."""
    for name, t in targets.items():
        if set(t) != {"value", "target", "met"}:
            raise ConfigError(f"target {name!r} must be made by results.target(value, rule), got keys {sorted(t)}")
    data = {**results, "targets": targets, "machine": machine(), "seconds": round(float(seconds), 1)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n")
    tmp.replace(out / "results.json")
    return data


def write_report(out: str | Path, text: str) -> str:
    """Write out/report.md and print it (what `genzoo experiment` shows at the end). Returns the text."""
    (Path(out) / "report.md").write_text(text)
    print(text)
    return text


def targets_markdown(targets: dict[str, dict]) -> str:
    """The targets as a markdown table for report.md."""
    lines = ["| target | value | rule | met |", "|---|---|---|---|"]
    for name, t in targets.items():
        v = t["value"]
        shown = f"{v:.4g}" if isinstance(v, float) else str(v)
        lines.append(f"| {name} | {shown} | {t['target']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)
