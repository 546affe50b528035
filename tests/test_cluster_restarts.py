"""``ringrun --max-restarts`` in a RINGTRAIN_CONFIG cluster (issue 18 item 2): a worker killed
twice restarts every machine together, the programs resume from their last checkpoint, and
the job ends with the weights of an uninterrupted run."""

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "mp"))
from cluster_harness import MP, Machine, cleanup, free_ports, wait_all

pytestmark = pytest.mark.mpi
RESUME = MP / "cluster_resume.py"


@pytest.fixture(autouse=True)
def _stop_leftovers():
    yield
    cleanup()


def test_every_machine_restarts_together_and_resumes_from_the_checkpoint(tmp_path):
    a, b = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{a}", f"127.0.0.1:{b}"]}
    # 12 steps of allreduce(rank + 1) with a checkpoint after each: w = 12 * (1 + 2) = 36.
    env = {"RINGTRAIN_TIMEOUT": "30", "CLUSTER_TEST_DIR": str(tmp_path),
           "CLUSTER_TEST_STEPS": "12", "CLUSTER_TEST_SLEEP": "0.3"}
    options = ["--max-restarts", "3"]
    m0 = Machine.ringrun(1, RESUME, cluster, ("worker", 0), env=env, options=options)
    m1 = Machine.ringrun(1, RESUME, cluster, ("worker", 1), env=env, options=options)
    starts = []
    for attempt in (1, 2):
        found = m1.wait_for_nth(r"START rank=1 step=(\d+) pid=(\d+)", attempt, timeout=90)
        starts.append(int(found.group(1)))
        m0.wait_for_nth(r"START rank=0 step=\d+", attempt, timeout=90)
        time.sleep(1.5)                         # a few steps, each checkpointed
        os.kill(int(found.group(2)), signal.SIGKILL)
    assert wait_all([m0, m1], timeout=120) == [0, 0], m0.text + "\n---\n" + m1.text
    for machine, rank in ((m0, 0), (m1, 1)):
        restarts = [line for line in machine.lines if line.startswith("ringrun: restart ")]
        assert [line.split(" after ")[0] for line in restarts] == \
            ["ringrun: restart 1/3", "ringrun: restart 2/3"], machine.text
        assert all("rank 1 was killed by signal 9" in line for line in restarts), machine.text
        assert re.search(r"ringrun: 1 worker\(s\) finished in [\d.]+ s and 2 restart\(s\): "
                         r"exit code 0", machine.text), machine.text
        # Started three times, the later ones from a checkpoint (the program checks that
        # the restored w is step * 3), and finished with the uninterrupted run's w.
        resumed = [int(s) for s in re.findall(rf"START rank={rank} step=(\d+)", machine.text)]
        assert len(resumed) == 3 and resumed[0] == 0 and 0 < resumed[1] <= resumed[2] < 12, \
            machine.text
        assert [line for line in machine.lines if "FINISHED" in line] == \
            [f"[{rank}] FINISHED rank={rank} step=12 w=36"], machine.text
    assert starts[0] == 0
