"""Keras resume under MirroredStrategy when workers share no filesystem (``ringrun -np 2``).

Each rank keeps its backup under a rank-dependent directory, so only the chief's holds the
backup (another rank's is missing or stale); the chief's must decide for every rank.
"""

import shutil

import pytest

SCRIPT = "tests/mp/strategy_keras_local_disk.py"


def _lines(result, rank, prefix):
    return [line.split()[-1] for line in result.stdout_of(rank) if line.startswith(prefix)]


@pytest.mark.parametrize("other_rank_backup", ["missing", "stale"])
def test_every_rank_resumes_from_the_chiefs_backup(ringrun, tmp_path, other_rank_backup):
    n, stop_after = 2, 1
    ref = ringrun(n, SCRIPT, str(tmp_path / "ref"), timeout=60).check()
    ref_hash = _lines(ref, 0, "weights")
    assert len(ref_hash) == 1 and _lines(ref, 1, "weights") == ref_hash, ref.describe()

    run = tmp_path / "run"
    if other_rank_backup == "stale":
        # An older backup (after epoch 0) left in rank 1's own directory.
        early = ringrun(n, SCRIPT, str(run), "--stop-after", "0", timeout=60)
        assert early.returncode != 0 and (run / "stopped").exists(), early.describe()
        shutil.copytree(run / "rank0" / "backup", run / "rank1" / "backup")
        (run / "stopped").unlink()
    first = ringrun(n, SCRIPT, str(run), "--stop-after", str(stop_after), timeout=60)
    assert first.returncode != 0 and (run / "stopped").exists(), first.describe()
    assert (run / "rank0" / "backup" / "backup.npz").exists(), first.describe()
    if other_rank_backup == "missing":
        assert not (run / "rank1").exists()         # only the chief ever wrote
    else:
        assert (run / "rank1" / "backup" / "backup.npz").exists()

    second = ringrun(n, SCRIPT, str(run), "--stop-after", str(stop_after), timeout=60).check()
    for rank in range(n):
        assert _lines(second, rank, "start epoch") == [str(stop_after + 1)], second.describe()
        assert _lines(second, rank, "weights") == ref_hash, second.describe()
        # load_weights of a ModelCheckpoint file only the chief's directory holds.
        assert _lines(second, rank, "loaded") == ref_hash, second.describe()
