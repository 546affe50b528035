"""ringrun as users of torchrun and Horovod expect: --max-restarts, -np's default, output
copied per rank (--output-filename), timestamps, and the exit summary line."""

import re

import numpy as np
import pytest

pytestmark = pytest.mark.mpi


def test_restarts_resume_from_the_checkpoint_to_the_uninterrupted_weights(ringrun, tmp_path):
    for name in ("ref_ckpt", "ref", "ckpt", "out"):
        (tmp_path / name).mkdir()
    ringrun(2, "tests/mp/strategy_resume.py", str(tmp_path / "ref_ckpt"), str(tmp_path / "ref"),
            timeout=90).check()
    # rank 1 is SIGKILLed after steps 4 and 11; each restart resumes from the last checkpoint
    res = ringrun(2, "tests/mp/strategy_resume.py", str(tmp_path / "ckpt"),
                  str(tmp_path / "out"), "--kill-at", "4", "--kill-at", "11", "--kill-rank", "1",
                  "--marker", str(tmp_path / "killed"), options=["--max-restarts", "3"],
                  timeout=180).check()
    restarts = [m for m in res.messages if m.startswith("ringrun: restart ")]
    assert [m.split(" after ")[0] for m in restarts] == ["ringrun: restart 1/3",
                                                         "ringrun: restart 2/3"], res.describe()
    assert all("after rank 1 was killed by signal 9" in m for m in restarts), res.describe()
    assert re.match(r"ringrun: 2 worker\(s\) finished in [\d.]+ s and 2 restart\(s\): exit code 0",
                    res.messages[-1]), res.describe()
    starts = [line for line in res.stdout_of(0) if line.startswith("start at step")]
    assert [s.split(" (")[0] for s in starts] == ["start at step 0", "start at step 3",
                                                  "start at step 9"], res.describe()
    for rank in range(2):
        with np.load(tmp_path / "ref" / f"rank{rank}.npz") as ref, \
                np.load(tmp_path / "out" / f"rank{rank}.npz") as out:
            for key in ref.files:
                np.testing.assert_array_equal(out[key], ref[key])


def test_restarts_are_bounded_and_the_summary_names_the_cause(ringrun):
    res = ringrun(2, code="import sys, ringtrain as rt; c = rt.init(); sys.exit(3 + c.rank)",
                  options=["--max-restarts", "1"], timeout=90)
    assert res.returncode in (3, 4), res.describe()
    assert sum(m.startswith("ringrun: restart 1/1 after rank") for m in res.messages) == 1
    assert not any(m.startswith("ringrun: restart 2/") for m in res.messages)
    assert re.match(rf"ringrun: 2 worker\(s\) stopped after [\d.]+ s and 1 restart\(s\): exit "
                    rf"code {res.returncode} \(rank \d exited with code {res.returncode}\)",
                    res.messages[-1]), res.describe()


def test_ctrl_c_and_timeouts_are_not_restarted(ringrun):
    res = ringrun(1, code="import time; time.sleep(30)",
                  options=["--max-restarts", "3", "--timeout", "1"], timeout=60)
    assert res.returncode == 124 and not any("restart" in m for m in res.messages), \
        res.describe()


def test_output_copied_per_rank_and_timestamps(ringrun, tmp_path):
    out = tmp_path / "logs"
    res = ringrun(2, code="import sys, ringtrain as rt; c = rt.init(); print('out', c.rank); "
                          "print('err', c.rank, file=sys.stderr)",
                  options=["--output-filename", str(out), "--timestamp"]).check()
    for rank in range(2):
        assert (out / f"rank.{rank}" / "stdout").read_text() == f"out {rank}\n"
        assert (out / f"rank.{rank}" / "stderr").read_text() == f"err {rank}\n"
        stamped = [ln for ln in res.stdout.splitlines() if ln.endswith(f"out {rank}")]
        assert re.fullmatch(rf"\[{rank} \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{3}}\] out {rank}",
                            stamped[0]), res.describe()


def test_np_defaults_to_the_gpus_or_one(ringrun):
    res = ringrun(None, code="import ringtrain as rt; print('size', rt.init().world_size)",
                  env={"CUDA_VISIBLE_DEVICES": ""}).check()
    assert res.stdout_of(0) == ["size 1"]
    assert any("-np not given: starting 1 worker(s)" in m for m in res.messages), res.describe()
