"""Checkpoints and Keras backups under kills, SIGTERM and resume, with real processes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_ringrun

from ringtrain import checkpoint

KERAS = "tests/mp/strategy_keras_resume.py"
_REFERENCES: dict[int, object] = {}


def _reference(np_: int, tmp_path_factory) -> object:
    """Final weights of an uninterrupted fit with Dropout at ``np_`` workers (run once)."""
    if np_ not in _REFERENCES:
        work = tmp_path_factory.mktemp(f"keras-ref-{np_}")
        run_ringrun(np_, KERAS, str(work), "--dropout", timeout=120).check()
        _REFERENCES[np_] = work
    return _REFERENCES[np_]


def _same_weights(ref, run, np_: int) -> None:
    for rank in range(np_):
        with np.load(ref / "out" / f"rank{rank}.npz") as a, \
                np.load(run / "out" / f"rank{rank}.npz") as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(b[key], a[key])


def _epochs(result) -> list[str]:
    return [line.split()[1] for line in result.stdout_of(0) if line.startswith("Epoch")]


@pytest.mark.parametrize("np_", [1, 2])
def test_keras_resume_with_dropout_is_bit_identical(tmp_path, tmp_path_factory, np_):
    ref = _reference(np_, tmp_path_factory)
    command = [KERAS, str(tmp_path), "--dropout", "--kill-epoch", "2", "--kill-batch", "5",
               "--kill-rank", str(np_ - 1)]
    first = run_ringrun(np_, *command, timeout=120)
    assert first.returncode != 0 and (tmp_path / "killed").exists(), first.describe()
    second = run_ringrun(np_, *command, timeout=120).check()
    assert _epochs(second) == ["3/4", "4/4"], second.describe()
    _same_weights(ref, tmp_path, np_)       # the dropout masks continued where they were


@pytest.mark.parametrize(("stage", "resumed_epochs"), [
    ("written", ["2/4", "3/4", "4/4"]),     # temporary file complete, not renamed
    ("renaming", ["2/4", "3/4", "4/4"]),    # killed just before the rename
    ("renamed", ["3/4", "4/4"]),            # killed just after it
])
def test_a_kill_inside_the_keras_backup_keeps_a_whole_one(tmp_path, tmp_path_factory, stage,
                                                         resumed_epochs):
    ref = _reference(1, tmp_path_factory)
    command = [KERAS, str(tmp_path), "--dropout", "--kill-epoch", "1", "--kill-in-backup", stage]
    first = run_ringrun(1, *command, timeout=120)
    assert first.returncode != 0 and (tmp_path / "killed").exists(), first.describe()
    second = run_ringrun(1, *command, timeout=120).check()
    assert _epochs(second) == resumed_epochs, second.describe()
    _same_weights(ref, tmp_path, 1)
    # The killed write's temporary file is gone: the next backup removed it.
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["backup.npz"]


@pytest.mark.parametrize("np_", [2, 3])
def test_sigterm_as_the_chief_enters_save_keeps_that_checkpoint(tmp_path, np_):
    program = "tests/mp/checkpoint_sigterm.py"
    first = run_ringrun(np_, program, str(tmp_path), "--term-at", "4", timeout=90)
    assert first.returncode != 0 and (tmp_path / "termed").exists(), first.describe()
    # Every worker finished the save it was in: the checkpoint of step 4 is the latest.
    assert checkpoint.latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-4"), first.describe()
    second = run_ringrun(np_, program, str(tmp_path), timeout=90).check()
    per_step = np_ * (np_ + 1) / 2
    for rank in range(np_):
        lines = second.stdout_of(rank)
        assert lines[0] == "START step=4", second.describe()
        # Each rank's random stream continued where the checkpoint left it.
        later = np.random.default_rng(100 + rank).random(10)[4:].sum()
        assert lines[-1] == f"DONE w={10 * per_step:.1f} draws={later:.6f}", second.describe()


def test_a_save_removes_the_temporary_files_of_killed_saves(tmp_path):
    stale = [".ckpt-3.npz.k2j3.tmp", ".checkpoint.a8f.tmp"]
    kept = [".other.x.tmp", "notes.txt"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"half")
    manager = checkpoint.CheckpointManager(checkpoint.Checkpoint(x=np.ones(2)), tmp_path)
    manager.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*kept, "checkpoint", "ckpt-1.npz"])
