"""The non-finite check (`interop.files.check_finite_safetensors`) scans a file a few MB at a time and releases
each range once counted: its resident-set peak stays near one chunk, not the file's size."""

import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from genzoo.errors import CheckpointError
from genzoo.interop.files import check_finite_safetensors, verify_safetensors

MB = 1024 * 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc (Linux only)")
def test_the_scan_never_holds_the_file_resident(tmp_path):
    f = tmp_path / "big.safetensors"
    a = np.ones(64 * MB // 4, dtype=np.float32)
    a[-1] = np.nan  # the last value: the whole file is read
    save_file({"w": a}, f)
    del a
    n, header = verify_safetensors(f)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = _status_kb("VmRSS")
    with pytest.raises(CheckpointError, match=r"'w' \(1 of 16777216\)"):
        check_finite_safetensors(f, n, header)
    grown = (_status_kb("VmHWM") - before) * 1024
    assert grown < 32 * MB, f"the scan held {grown / MB:.0f} MB resident for a 64 MB file"
