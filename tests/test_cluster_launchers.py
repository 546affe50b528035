"""Joining without ringrun's cluster mode: TF_CONFIG under plain python/mpiexec, torchrun's
variables, torchrun itself, and machines in separate network namespaces."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "mp"))
from cluster_harness import (
    MP,
    SECRET,
    Machine,
    clean_env,
    cleanup,
    config,
    free_ports,
    wait_all,
)

pytestmark = pytest.mark.mpi
ALLREDUCE = str(MP / "cluster_allreduce.py")


@pytest.fixture(autouse=True)
def _stop_leftovers():
    yield
    cleanup()


def ok_lines(machines):
    return sorted(line for m in machines for line in m.lines if "OK rank=" in line)


def test_tf_config_with_plain_python_and_mpiexec():
    a, b = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{a}", f"127.0.0.1:{b}"]}
    env = {"RINGTRAIN_SECRET": SECRET, "CLUSTER_TEST_N": "5"}
    # The chief is a bare process (init() re-executes it under mpiexec -n 1); worker 1 is an
    # mpiexec job of two.
    chief = Machine([sys.executable, ALLREDUCE],
                    clean_env({**env, "TF_CONFIG": config(cluster, "worker", 0),
                               "CLUSTER_TEST_MACHINE": "A"}), "chief")
    other = Machine(["mpiexec", "-n", "2", sys.executable, ALLREDUCE],
                    clean_env({**env, "TF_CONFIG": config(cluster, "worker", 1),
                               "CLUSTER_TEST_MACHINE": "B"}), "worker:1")
    assert wait_all([chief, other]) == [0, 0], chief.text + "\n---\n" + other.text
    lines = ok_lines([chief, other])
    assert [line.split()[1] for line in lines] == ["rank=0", "rank=1", "rank=2"]
    assert all("size=3 layout=[(0, 'A'), (1, 'B'), (2, 'B')]" in line for line in lines)
    assert all(line.endswith("netmod=ofi") for line in lines)   # join() picks it without ringrun


def torch_vars(rank, size, port, **extra):
    return clean_env({"RANK": str(rank), "WORLD_SIZE": str(size), "LOCAL_RANK": str(rank),
                      "LOCAL_WORLD_SIZE": str(size), "MASTER_ADDR": "127.0.0.1",
                      "MASTER_PORT": str(port), "CLUSTER_TEST_MACHINE": f"p{rank}", **extra})


def test_torchrun_style_variables_form_one_world():
    (port,) = free_ports(1)
    procs = [Machine([sys.executable, ALLREDUCE],
                     torch_vars(r, 3, port - 1, RINGTRAIN_SECRET=SECRET), f"rank {r}")
             for r in (2, 0, 1)]
    assert wait_all(procs) == [0, 0, 0], "\n---\n".join(p.text for p in procs)
    lines = ok_lines(procs)
    assert [line.split()[1] for line in lines] == ["rank=0", "rank=1", "rank=2"]
    assert all("layout=[(0, 'p0'), (1, 'p1'), (2, 'p2')]" in line for line in lines)


def test_torchrun_style_variables_need_a_secret():
    (port,) = free_ports(1)
    proc = Machine([sys.executable, ALLREDUCE], torch_vars(1, 2, port), "rank 1")
    assert proc.wait(60) != 0
    assert "RINGTRAIN_SECRET is not set" in proc.text


@pytest.mark.torch
def test_real_torchrun():
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    proc = Machine([torchrun, "--standalone", "--nproc-per-node", "2", ALLREDUCE],
                   clean_env({"OMP_NUM_THREADS": "1"}), "torchrun")
    assert proc.wait(90) == 0, proc.text
    lines = [line for line in proc.lines if "OK rank=" in line]
    assert len(lines) == 2 and all("size=2" in line for line in lines), proc.text


# --- two "machines" in separate network namespaces joined by a veth pair -----------------------

def _ip(*args):
    return subprocess.run(["ip", *args], check=False, capture_output=True, text=True,
                          timeout=10)


@pytest.fixture
def namespaces():
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2 for network namespaces")
    tag = f"rt{os.getpid() % 100000}"
    names = [f"{tag}a", f"{tag}b"]
    ends = [f"{tag}va", f"{tag}vb"]
    subnet = 10 + os.getpid() % 200
    addresses = [f"10.{subnet}.77.1", f"10.{subnet}.77.2"]
    created = []
    try:
        for name in names:
            if _ip("netns", "add", name).returncode != 0:
                pytest.skip("network namespaces are not permitted here")
            created.append(name)
        steps = [("link", "add", ends[0], "type", "veth", "peer", "name", ends[1])]
        for name, end, address in zip(names, ends, addresses):
            steps += [("link", "set", end, "netns", name),
                      ("-n", name, "addr", "add", f"{address}/24", "dev", end),
                      ("-n", name, "link", "set", end, "up"),
                      ("-n", name, "link", "set", "lo", "up")]
        for step in steps:
            result = _ip(*step)
            if result.returncode != 0:
                pytest.skip(f"cannot set up network namespaces: ip {' '.join(step)}: "
                            f"{result.stderr.strip()}")
        yield names, addresses
    finally:
        for name in created:
            _ip("netns", "del", name)    # deleting a namespace removes its veth end too


def test_machines_in_separate_network_namespaces(namespaces):
    names, addresses = namespaces
    cluster = {"worker": [f"{addresses[0]}:24001", f"{addresses[1]}:24001"]}
    machines = []
    for index, (name, np) in enumerate(zip(names, (1, 2))):
        env = clean_env({"RINGTRAIN_SECRET": SECRET, "RINGTRAIN_JOIN_TIMEOUT": "30",
                         "RINGTRAIN_CONFIG": config(cluster, "worker", index),
                         "CLUSTER_TEST_MACHINE": name})
        machines.append(Machine(["ip", "netns", "exec", name, sys.executable, "-m", "ringrun",
                                 "-np", str(np), ALLREDUCE], env, name))
    assert wait_all(machines, timeout=90) == [0, 0], "\n---\n".join(m.text for m in machines)
    lines = ok_lines(machines)
    assert len(lines) == 3
    assert all(f"size=3 layout=[(0, '{names[0]}'), (1, '{names[1]}'), (2, '{names[1]}')]"
               in line for line in lines)
    assert all(line.endswith("netmod=ofi") for line in lines)   # what ringrun picks for clusters
