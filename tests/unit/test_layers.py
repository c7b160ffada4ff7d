"""The layer contracts in pyproject.toml hold: imports go downwards only, and serving (with the
bundle, registry and YAML contracts) never imports torch or PyG, directly or indirectly."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_a_serving_worker_loads_neither_torch_nor_pyg():
    # every module of guanxi.serving, as a worker and the MLflow pyfunc may import them
    code = ("import importlib, pkgutil, sys, guanxi.serving as s\n"
            "for m in pkgutil.iter_modules(s.__path__): importlib.import_module('guanxi.serving.' + m.name)\n"
            "print(sorted(m for m in ('torch', 'torch_geometric') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
