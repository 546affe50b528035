"""The Keras examples run in one command and reach their accuracy targets."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("sklearn")


def run_example(name: str, pattern: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), "--verbose", "0"],
                         capture_output=True, text=True, timeout=110, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    match = re.search(pattern + r": ([0-9.]+)", out.stdout)
    assert match, out.stdout
    return float(match.group(1))


def test_keras_digits_reaches_095():
    assert run_example("keras_digits.py", "test accuracy") >= 0.95


def test_iris_dnn_reaches_09():
    assert run_example("iris_dnn.py", "held-out accuracy") >= 0.9


@pytest.mark.mpi
@pytest.mark.timeout(300)
def test_the_first_command_trains_on_two_workers(ringrun, tmp_path):
    """README's first command: identical replicas, the stated accuracy, logs and checkpoint."""
    res = ringrun(2, "examples/train_digits.py", "--out", str(tmp_path), "--verbose", "2",
                  timeout=300).check()
    finals = [re.search(r"test accuracy ([0-9.]+) .* weights ([0-9a-f]{16})",
                        res.stdout_of(r)[-1]) for r in range(2)]
    assert all(finals), res.describe()
    assert finals[0].groups() == finals[1].groups(), res.describe()    # identical replicas
    assert float(finals[0].group(1)) >= 0.96, res.describe()
    epochs = [ln for ln in res.stdout_of(0) if "val_accuracy" in ln]
    assert len(epochs) == 12 and not [ln for ln in res.stdout_of(1) if "val_accuracy" in ln]
    assert list((tmp_path / "logs" / "train").glob("events.out.tfevents.*"))
    assert (tmp_path / "checkpoint.weights.npz").stat().st_size > 0
