"""`adaaug train` under torchrun: two CPU processes (gloo) train one model with DDP.

Each process runs AdA on its own half of every batch with its own generator; at the end
both must hold bitwise the same weights (parameters and BatchNorm statistics).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adaaug.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_two_process_ddp_gloo(cifar_train_subset, cifar_dev_subset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "adaaug", "train", "--data", str(cifar_train_subset), "--eval-data", str(cifar_dev_subset),
           "--subset", "64", "--batch-size", "32", "--epochs", "2", "--warmup-epochs", "0", "--arch", "resnet20",
           "--method", "ada", "--backbone", "unet", "--backbone-weights", "none", "--ada-steps", "1",
           "--chunk-size", "16", "--device", "cpu", "--threads", "1", "--no-progress", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["local_batch"] == 16 and result["train_images"] == 64
    assert len(result["rank_checksums"]) == 2 and result["ranks_agree"]
    assert result["rank_checksums"][0] == result["rank_checksums"][1]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2] and all(0 <= x["eval_acc"] <= 1 for x in lines)
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["world_size"] == 2 and len(ck["rng"]) == 2
    # per-rank augmentation generators, seeded from (seed, rank): different streams
    assert not torch.equal(ck["rng"][0]["augment"], ck["rng"][1]["augment"])
    assert (out / "final.safetensors").exists()
    # only rank 0 logs the epoch records
    assert proc.stdout.count('"epoch": 1,') == 1


def test_ddp_bad_batch_fails_fast(cifar_train_subset, tmp_path):
    """A global batch that the world size does not divide stops both processes before training."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "adaaug", "train", "--data", str(cifar_train_subset), "--batch-size", "33", "--epochs", "1",
           "--warmup-epochs", "0", "--arch", "resnet20", "--device", "cpu", "--out", str(tmp_path / "run")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "batch_size 33 is not divisible by the world size 2" in proc.stderr
    assert not (tmp_path / "run").exists()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
