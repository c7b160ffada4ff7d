"""Training under `torchrun --nproc-per-node 2` (DDP, gloo) reaches the single-process quality."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _train(cmd_prefix: list[str], data, out, cwd) -> dict:
    cmd = cmd_prefix + ["-m", "guanxi.app.cli", "train", "--data", str(data), "--no-track", "--no-progress",
                        "--metrics-json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_processes_reach_the_single_process_recall(tiny_world_dir, tmp_path):
    single = _train([sys.executable], tiny_world_dir, tmp_path / "single.json", tmp_path)
    ddp = _train([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
                 tiny_world_dir, tmp_path / "ddp.json", tmp_path)
    assert single["processes"] == 1 and ddp["processes"] == 2
    rel = abs(ddp["recall_at_20"] - single["recall_at_20"]) / single["recall_at_20"]
    assert rel <= 0.02, (single["recall_at_20"], ddp["recall_at_20"])
