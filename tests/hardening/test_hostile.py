"""Every case of the hostile-input catalogue (cases.py: hostile files, bad configs, bad API inputs, bad CLI values,
runs, interrupted writes) ends clean: the genzoo error naming the problem, or one line on stderr with exit status 2
for a usage error and 1 for the rest; no traceback, no silent accept, no protected file changed, no pickle payload
run. `python -m tests.hardening` prints the same cases as counts."""

import pytest

from .cases import CASES
from .harness import Workspace, attempt


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("hostile-ws"))


@pytest.mark.parametrize("case", CASES, ids=[f"{c.family}: {c.name}" for c in CASES])
def test_bad_input_ends_clean(case, ws, tmp_path):
    outcome = attempt(case, ws, tmp_path)
    assert outcome.kind == "clean", outcome.detail


def test_the_catalogue_covers_every_family():
    families = {c.family for c in CASES}
    assert families == {"hostile-files", "bad-configs", "bad-api", "bad-cli", "runs", "interrupted"}
    assert len(CASES) >= 200
    assert len({(c.family, c.name) for c in CASES}) == len(CASES), "two cases share a name"
