"""ruff and mypy (strict on the core) stay clean: run as part of the full suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_ruff_is_clean() -> None:
    out = subprocess.run(
        [str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_strict_on_the_core_is_clean() -> None:
    out = subprocess.run([str(BIN / "mypy")], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_core_never_imports_prefect_or_does_network_io() -> None:
    import ast

    forbidden = {
        "prefect",
        "pynetdicom",
        "smtplib",
        "socket",
        "urllib",
        "httpx",
        "pyschedvisu",
        "kaleido",
    }
    for path in (ROOT / "pyschedvisu_core").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, (
                    f"{path.name} imports {name}: the core must stay pure"
                )
