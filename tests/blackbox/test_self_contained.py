"""The repository is self-sufficient: the test suite needs nothing outside it.

A copy of the repository (without build output, virtual environments or Git data) is placed in
a fresh temporary directory, where no reference folder sits next to it. There, every black-box
test module must be collected (test_schemathesis.py loads its OpenAPI document at import), the
fidelity test must pass, and `scripts/self-contained` (which scripts/test runs first) must pass;
and it must fail once a test names the reference folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import ROOT

SKIP = {"target", ".git", ".venv", "__pycache__", ".pytest_cache", "node_modules"}


def _copy(dest):
    shutil.copytree(ROOT, dest, ignore=lambda _dir, names: [n for n in names if n in SKIP or n.startswith(".venv")])


def _run(args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_suite_runs_from_a_copy_with_nothing_beside_it(tmp_path):
    clone = tmp_path / "elsewhere" / "dbcerts"
    _copy(clone)
    assert sorted(p.name for p in clone.parent.iterdir()) == ["dbcerts"]
    assert not (clone.parent / "shared").exists()

    guard = _run(["scripts/self-contained"], clone)
    assert guard.returncode == 0, guard.stdout + guard.stderr

    collect = _run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/blackbox"], clone)
    assert collect.returncode == 0, collect.stdout[-4000:] + collect.stderr[-4000:]
    collected = [line for line in collect.stdout.splitlines() if "::" in line]
    assert any("test_schemathesis.py::" in line for line in collected), collect.stdout[-2000:]
    assert len(collected) > 100, collect.stdout[-2000:]

    fidelity = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/blackbox/test_fidelity.py"], clone)
    assert fidelity.returncode == 0, fidelity.stdout[-4000:] + fidelity.stderr[-4000:]

    # The guard catches a test that reads the reference folder.
    planted = clone / "tests" / "blackbox" / "test_planted.py"
    # (Assembled here, so that this file does not itself name the folder.)
    folder = "sha" + "red"
    planted.write_text(f'SPEC = ROOT.parent / "{folder}" / "spec"\n')
    caught = _run(["scripts/self-contained"], clone)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert "test_planted.py" in caught.stdout
