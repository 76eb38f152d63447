import json

import pytest

from genzoo.errors import ConfigError
from genzoo.experiments.results import machine_line, target, targets_markdown, write_results


def test_target_rules():
    assert target(0.9, ">= 0.85")["met"] and not target(0.84, ">= 0.85")["met"]
    assert target(3, "<= 3")["met"] and not target(3, "< 3")["met"]
    assert target(True, "== true")["met"] and not target(False, "== true")["met"]
    assert not target(float("nan"), ">= 0")["met"] and not target(None, ">= 0")["met"]
    with pytest.raises(ConfigError, match="OP NUMBER"):
        target(1, "at least 1")


def test_write_results(tmp_path):
    t = {"f1": target(0.5, ">= 0.85")}
    data = write_results(tmp_path, {"figure": 1.0}, t, seconds=12.34)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == data
    assert on_disk["targets"]["f1"] == {"value": 0.5, "target": ">= 0.85", "met": False}
    assert on_disk["seconds"] == 12.3 and on_disk["machine"]["cores"] >= 1 and "torch" in on_disk["machine"]
    assert "**no**" in targets_markdown(t)
    with pytest.raises(ConfigError, match="results.target"):
        write_results(tmp_path, {}, {"x": {"value": 1}}, seconds=1)


def test_machine_line_names_the_machine_and_the_time(tmp_path, monkeypatch):
    from genzoo.experiments import results

    monkeypatch.setattr(results, "load_average", lambda: 1.234)  # the figure's load, read once per results.json
    data = write_results(tmp_path, {}, {}, seconds=61.6)
    line = machine_line(data)
    m = data["machine"]
    threads = f"{m['torch_threads']} torch thread" + ("" if m["torch_threads"] == 1 else "s")
    assert line.startswith(f"Machine: {m['cpu']}, {m['cores']} cores, {threads}, ")
    assert f"torch {m['torch']}" in line and line.endswith("load average 1.23; 62 s in all.")
    # an older results.json without threads or load still gives a line
    assert machine_line({"machine": {"cpu": "X", "cores": 2}, "seconds": 5}) == (
        "Machine: X, 2 cores, load average n/a; 5 s in all.")
    assert "1 torch thread, " in machine_line({"machine": {"cpu": "X", "cores": 2, "torch_threads": 1}, "seconds": 5})
