"""Every shipped example configuration is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates(path, run_modelgate):
    r = run_modelgate(["validate", "--config", path])
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_there_are_examples():
    assert len(EXAMPLES) >= 5
