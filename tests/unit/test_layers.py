"""The layer contracts in pyproject.toml hold: imports go downwards only, and serving (with the
bundle, registry and YAML contracts) never imports torch or PyG, directly or indirectly.

import-linter walks the root package's folder, which in a checkout holds only the contracts (the
other layers are top-level folders mapped into ``guanxi.*``), so it lints a staged copy laid out as
an installed package. The check is shown to fail on copies with a forbidden import planted."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guanxi.app.package_tree import checkout_folders, stage_package

REPO = Path(__file__).resolve().parents[2]


def lint(checkout: Path, tmp: Path) -> subprocess.CompletedProcess:
    """import-linter over a staged copy of ``checkout``'s package, with its pyproject's contracts."""
    staged = stage_package(checkout_folders(checkout), tmp / "staged")
    lint_imports = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint_imports), str(checkout / "pyproject.toml"), "--no-cache"], cwd=staged,
                          env={"PYTHONPATH": str(staged), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)


def test_import_linter_contracts_are_kept(tmp_path):
    done = lint(REPO, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def _copy(tmp: Path) -> Path:
    copy = tmp / "checkout"
    copy.mkdir()
    shutil.copy2(REPO / "pyproject.toml", copy / "pyproject.toml")
    for folder in checkout_folders(REPO).values():
        shutil.copytree(folder, copy / folder.relative_to(REPO), ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.mark.parametrize("module, planted, broken", [
    ("serving/scores.py", "import torch\n", "Serving and the contracts never load the model stack"),
    ("contracts/bundle.py", "from torch_geometric.data import HeteroData\n",
     "Serving and the contracts never load the model stack"),
    ("serving/policy.py", "from guanxi.training import config\n", "Layers"),
    ("training/metrics.py", "from guanxi.serving import scores\n", "Layers"),
    ("contracts/registry.py", "import guanxi.app.ops\n", "Layers"),
    ("features/ids.py", "import guanxi.app.cli\n", "Layers"),
])
def test_a_planted_forbidden_import_breaks_the_check(tmp_path, module, planted, broken):
    copy = _copy(tmp_path)
    target = copy / module
    target.write_text(target.read_text() + "\n" + planted)
    done = lint(copy, tmp_path)
    assert done.returncode != 0
    assert f"{broken}" in done.stdout and "BROKEN" in done.stdout, done.stdout[-3000:]


def test_a_serving_worker_loads_neither_torch_nor_pyg():
    # every module of guanxi.serving, as a worker and the MLflow pyfunc may import them
    code = ("import importlib, pkgutil, sys, guanxi.serving as s\n"
            "for m in pkgutil.iter_modules(s.__path__): importlib.import_module('guanxi.serving.' + m.name)\n"
            "print(sorted(m for m in ('torch', 'torch_geometric') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
