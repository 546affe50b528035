"""Unit tests of how a process decides to join (environment only, no network, no MPI)."""

import json

import pytest

from ringtrain.errors import ConfigError
from ringtrain.world.join import plan_join

CLEARED = ("RINGTRAIN_CONFIG", "TF_CONFIG", "RINGTRAIN_SECRET", "RINGTRAIN_JOIN", "RINGTRAIN_GROUP",
           "RINGTRAIN_REEXEC", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PMI_RANK",
           "PMI_FD", "PMI_PORT", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "TORCHELASTIC_USE_AGENT_STORE")


@pytest.fixture
def env(monkeypatch):
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)

    def set_(**values):
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    return set_


def cfg(cluster, task_type="worker", index=0):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


THREE = {"chief": ["c.example:2000"], "worker": ["w0.example:2001", "w1.example:2002"]}


def test_nothing_set_means_no_join(env):
    assert plan_join() is None


def test_config_member_connects_to_the_chief(env):
    env(RINGTRAIN_CONFIG=cfg(THREE, "worker", 1), RINGTRAIN_SECRET="s")
    plan = plan_join()
    assert (plan.mode, plan.group, plan.host, plan.port) == ("config", 2, "c.example", 2000)
    assert plan.groups == ("chief:0", "worker:0", "worker:1") and plan.serve_port is None


def test_config_chief_hosts_the_rendezvous(env):
    env(TF_CONFIG=cfg(THREE, "chief", 0), RINGTRAIN_SECRET="s")
    plan = plan_join()
    assert (plan.group, plan.serve_port, plan.host, plan.port) == (0, 2000, "127.0.0.1", 2000)


def test_evaluator_and_one_machine_clusters_do_not_join(env):
    env(RINGTRAIN_CONFIG=cfg({**THREE, "evaluator": ["e:1"]}, "evaluator", 0))
    assert plan_join() is None
    env(RINGTRAIN_CONFIG=cfg({"worker": ["a:1"]}, "worker", 0))
    assert plan_join() is None


def test_config_needs_a_secret_and_a_valid_config(env):
    env(RINGTRAIN_CONFIG=cfg(THREE, "worker", 0))
    with pytest.raises(ConfigError, match="RINGTRAIN_SECRET is not set"):
        plan_join()
    env(RINGTRAIN_CONFIG=cfg(THREE, "worker", 7), RINGTRAIN_SECRET="s")
    with pytest.raises(ConfigError, match=r"task\.index 7 is out of range"):
        plan_join()


def test_ringrun_cluster_mode(env):
    env(RINGTRAIN_CONFIG=cfg(THREE, "worker", 0), RINGTRAIN_SECRET="s",
        RINGTRAIN_JOIN="c.example:2000", RINGTRAIN_GROUP="1")
    plan = plan_join()
    assert (plan.mode, plan.group, plan.host, plan.port) == ("ringrun", 1, "c.example", 2000)
    assert plan.serve_port is None


def test_torch_variables_with_and_without_torchruns_store(env):
    env(RANK="2", WORLD_SIZE="4", MASTER_ADDR="m.example", MASTER_PORT="29500",
        RINGTRAIN_SECRET="s")
    plan = plan_join()
    assert (plan.mode, plan.group, plan.host, plan.port) == ("torchrun", 2, "m.example", 29501)
    assert plan.sizes == (1, 1, 1, 1) and plan.store is None
    env(RANK="0")
    assert plan_join().serve_port == 29501
    env(TORCHELASTIC_USE_AGENT_STORE="True")
    plan = plan_join()
    assert plan.store == ("m.example", 29500) and plan.serve_port == 0


@pytest.mark.parametrize("values,message", [
    ({"RANK": "1", "WORLD_SIZE": "2"}, "RINGTRAIN_SECRET is not set"),
    ({"RANK": "3", "WORLD_SIZE": "2", "RINGTRAIN_SECRET": "s"}, "RANK=3 is out of range"),
    ({"RANK": "x", "WORLD_SIZE": "2", "RINGTRAIN_SECRET": "s"}, "RANK='x' must be"),
])
def test_bad_torch_variables(env, values, message):
    env(MASTER_ADDR="m", MASTER_PORT="1", **values)
    with pytest.raises(ConfigError, match=message):
        plan_join()


def test_torch_variables_inside_an_mpi_job_are_left_to_mpi(env):
    env(RANK="0", WORLD_SIZE="2", MASTER_ADDR="m", MASTER_PORT="1", PMI_RANK="0")
    assert plan_join() is None
    env(WORLD_SIZE="1")
    assert plan_join() is None
