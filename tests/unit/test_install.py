"""``pip install .`` installs one top-level import name, ``guanxi``, with every layer inside it and
the YAML defaults beside their code; the generic folder names of the checkout (``features``,
``training``, ``serving``, ``app``, ``contracts``) never reach site-packages."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from guanxi.app.package_tree import checkout_folders

REPO = Path(__file__).resolve().parents[2]


def test_pip_install_puts_only_guanxi_at_the_top(tmp_path):
    source = tmp_path / "source"                # a copy, so the build writes nothing into the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in checkout_folders(REPO).values():
        shutil.copytree(folder, source / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-compile", "--target", str(target), str(source)], check=True, capture_output=True)
    top = sorted(p.name for p in target.iterdir() if p.name != "bin")
    assert top == ["guanxi", "guanxi-0.1.0.dist-info"]
    pkg = target / "guanxi"
    for layer in ("features", "training", "serving", "app"):
        assert (pkg / layer / "__init__.py").is_file()
    for data in ("training/default.yaml", "serving/policy.yaml", "app/retrain.yaml"):
        assert (pkg / data).is_file()
    assert (pkg / "bundle.py").is_file() and (pkg / "registry.py").is_file()

    # the installed tree imports on its own, from an empty folder, without the checkout
    probe = ("import guanxi.serving.policy as p, guanxi.training.config as c, guanxi.app.cli, guanxi.bundle as b\n"
             "print(p.__file__); print(c.__file__); print(b.__file__)\n"
             "print(p.load_policy().frequency_cap)")
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-c", probe], cwd=empty, capture_output=True, text=True,
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    *files, _ = done.stdout.split()
    assert all(f.startswith(str(target)) for f in files), files
