"""Unit tests of the TF_CONFIG-style cluster parser: valid layouts and a table of malformed ones."""

import json
import os
import re
import subprocess
import sys

import pytest
from ringrun.cluster_config import ClusterConfigError, from_environ, parse_config

TWO = {"worker": ["hostA:2222", "hostB:2222"]}


def cfg(cluster, task_type="worker", index=0, **extra):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}, **extra})


def test_two_workers_worker0_is_chief():
    c = parse_config(cfg(TWO, "worker", 1))
    assert [t.name for t in c.machines] == ["worker:0", "worker:1"]
    assert c.chief.address == "hostA:2222"
    assert c.machine_index == 1 and not c.is_chief_machine
    assert c.task.address == "hostB:2222" and c.task.port == 2222 and c.task.host == "hostB"


def test_chief_task_comes_first_and_evaluator_is_not_a_machine():
    cluster = {"worker": ["w0:1", "w1:1"], "chief": ["c:1"], "evaluator": ["e:1"]}
    c = parse_config(cfg(cluster, "chief", 0))
    assert [t.name for t in c.machines] == ["chief:0", "worker:0", "worker:1"]
    assert c.is_chief_machine and c.num_machines == 3
    w1 = parse_config(cfg(cluster, "worker", 1))
    assert w1.machine_index == 2
    ev = parse_config(cfg(cluster, "evaluator", 0))
    assert ev.is_evaluator and ev.machine_index is None


def test_ipv6_and_environment_key_and_round_trip():
    c = parse_config(cfg({"worker": ["[::1]:2222", "[fe80::1]:2223"]}, environment="cloud"))
    assert c.task.host == "::1" and c.task.port == 2222
    again = parse_config(c.to_json())
    assert again.cluster == c.cluster and again.task == c.task


@pytest.mark.parametrize("text", [None, "", "   ", "{}"])
def test_empty_means_no_cluster(text):
    assert parse_config(text) is None


def test_ringtrain_config_wins_over_tf_config():
    tf_config = cfg(TWO, "worker", 1)
    assert from_environ({"TF_CONFIG": tf_config}).source == "TF_CONFIG"
    assert from_environ({"TF_CONFIG": tf_config}).task_index == 1
    mine = cfg(TWO, "worker", 0)
    assert from_environ({"TF_CONFIG": tf_config, "RINGTRAIN_CONFIG": mine}).task_index == 0
    # An empty RINGTRAIN_CONFIG switches a TensorFlow-only TF_CONFIG off.
    assert from_environ({"TF_CONFIG": tf_config, "RINGTRAIN_CONFIG": ""}) is None
    with pytest.raises(ClusterConfigError, match=r"^TF_CONFIG: task\.index 5"):
        from_environ({"TF_CONFIG": cfg(TWO, "worker", 5)})


MALFORMED = [
    # (config text, pattern the message must contain)
    ("{not json", r"RINGTRAIN_CONFIG is not valid JSON: .* line 1 column 2"),
    ("[1, 2]", r"must be a JSON object"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), r"cluster is missing"),
    (json.dumps({"cluster": TWO}), r"task is missing"),
    (json.dumps({"cluster": TWO, "task": {"type": "worker", "index": 0}, "taks": 1}),
     r"unknown key 'taks'"),
    (json.dumps({"cluster": ["a:1"], "task": {"type": "worker", "index": 0}}),
     r"cluster must be an object"),
    (cfg(TWO, "worker", 3), r"task\.index 3 is out of range: cluster\.worker has 2 entries"),
    (cfg(TWO, "worker", -1), r"task\.index -1 is out of range"),
    (cfg(TWO, "worker", "0"), r"task\.index must be an integer, got '0'"),
    (cfg(TWO, "worker", True), r"task\.index must be an integer"),
    (cfg(TWO, "worker", 1.0), r"task\.index must be an integer"),
    (cfg(TWO, "chief", 0), r"task\.type 'chief' has no entries in cluster"),
    (cfg(TWO, "master", 0), r"task\.type 'master' is not one of chief, worker, evaluator"),
    (cfg(TWO, "ps", 0), (r"task\.type 'ps': parameter servers are not supported: ringtrain "
                         r"trains synchronously with all-reduce")),
    (cfg({**TWO, "ps": ["p:1"]}), r"cluster\.ps: parameter servers are not supported"),
    (cfg({**TWO, "master": ["m:1"]}), r"cluster\.master: unknown task type \(TensorFlow's old"),
    (cfg({**TWO, "chief": ["c:1", "d:1"]}), r"cluster\.chief has 2 entries; at most one chief"),
    (cfg({**TWO, "evaluator": ["e:1", "f:1"]}), r"cluster\.evaluator has 2 entries"),
    (cfg({"evaluator": ["e:1"]}, "evaluator"), r"cluster has no 'chief' or 'worker' entries"),
    (cfg({"worker": []}), r"cluster\.worker is empty"),
    (cfg({"worker": "a:1"}), r"cluster\.worker must be a list"),
    (cfg({"worker": ["a:1", "a:1"]}), r"cluster\.worker\[1\] 'a:1' duplicates cluster\.worker\[0\]"),
    (cfg({"chief": ["A:1"], "worker": ["a:1"]}, "chief"),
     r"cluster\.worker\[0\] 'a:1' duplicates cluster\.chief\[0\]"),
    (cfg({"worker": ["hostA"]}), r"cluster\.worker\[0\] 'hostA' is not 'host:port'"),
    (cfg({"worker": [":2222"]}), r"cluster\.worker\[0\] ':2222' is not 'host:port'"),
    (cfg({"worker": ["a:0"]}), r"has port '0'; expected a number from 1 to 65535"),
    (cfg({"worker": ["a:70000"]}), r"has port '70000'"),
    (cfg({"worker": ["a:http"]}), r"has port 'http'"),
    (cfg({"worker": ["::1:2222"]}), r"write an IPv6 address in brackets"),
    (cfg({"worker": ["[zz::1]:2222"]}), r"is not an IPv6 address"),
    (cfg({"worker": ["bad host:1"]}), r"'bad host' is not a valid host name"),
    (cfg({"worker": [2222]}), r"cluster\.worker\[0\] must be a 'host:port' string, got int"),
    (json.dumps({"cluster": TWO, "task": {"type": "worker", "idx": 0}}),
     r"task\.idx is not a known field"),
    (json.dumps({"cluster": TWO, "task": {"index": 0}}), r"task\.type is missing"),
    (json.dumps({"cluster": TWO, "task": "worker"}), r"task must be an object"),
]


@pytest.mark.parametrize("text,pattern", MALFORMED)
def test_malformed_configs_name_the_field(text, pattern):
    with pytest.raises(ClusterConfigError, match=pattern) as info:
        parse_config(text)
    assert str(info.value).startswith("RINGTRAIN_CONFIG")
    assert isinstance(info.value, ValueError)


# --- hostile values: each used to crash with a traceback or be accepted (issue 12, item 13) ---

def _deep(levels):
    return '{"cluster": {"worker": ["a:1", "b:1"]}, "task": ' + "[" * levels + "]" * levels + "}"


HOSTILE = [
    # (name, RINGTRAIN_CONFIG, the field the message must name)
    ("superscript port", cfg({"worker": ["a:²", "b:1"]}), r"cluster\.worker\[0\] 'a:²' has port"),
    ("5000-digit index", cfg(TWO).replace('"index": 0', '"index": ' + "9" * 5000),
     r"task\.index a 5000-digit number is out of range"),
    ("60k-deep nesting", _deep(60_000),
     r"RINGTRAIN_CONFIG: task\[0\]\[0\]\[0\]\[0\]\.\.\. nests 60001 levels deep"),
    ("newline in host", cfg({"worker": ["chief\n:1", "b:1"]}),
     r"cluster\.worker\[0\] .*is not a valid host name"),
    ("64-char label", cfg({"worker": ["a" * 64 + ".example.com:1", "b:1"]}),
     r"cluster\.worker\[0\] .*is not a valid host name"),
]


@pytest.mark.parametrize("name,text,pattern", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_configs_name_the_field(name, text, pattern):
    with pytest.raises(ClusterConfigError, match=pattern):
        parse_config(text)


@pytest.mark.parametrize("name,text,pattern", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_ringrun_exits_2_naming_the_field(name, text, pattern):
    out = subprocess.run([sys.executable, "-m", "ringrun", "--dry-run", "-np", "1", "true"],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "RINGTRAIN_CONFIG": text, "RINGTRAIN_SECRET": "s"})
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith("ringrun: RINGTRAIN_CONFIG") and re.search(pattern, out.stderr)
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_init_raises_config_error_naming_the_field():
    # One process for the whole table: init() fails before it keeps any state.
    program = (
        "import json, os, sys, ringtrain\n"
        "from ringtrain.errors import ConfigError\n"
        "for text in json.load(sys.stdin):\n"
        "    os.environ['RINGTRAIN_CONFIG'] = text\n"
        "    try:\n"
        "        ringtrain.init()\n"
        "    except ConfigError as exc:\n"
        "        print(json.dumps(str(exc)))\n"
        "    else:\n"
        "        print(json.dumps('no error'))\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RINGTRAIN_", "PMI_"))}
    out = subprocess.run([sys.executable, "-c", program], input=json.dumps([h[1] for h in HOSTILE]),
                         capture_output=True, text=True, timeout=120, check=False,
                         env={**environ, "RINGTRAIN_SECRET": "s"})
    assert out.returncode == 0, out.stderr[-3000:]
    messages = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(messages) == len(HOSTILE)
    for (name, _, pattern), message in zip(HOSTILE, messages, strict=True):
        assert re.search(pattern, message), (name, message)


@pytest.mark.parametrize("address", ["node1.example.com.:2222", "a.b-c.d:1", "10.0.0.1:22",
                                     "x" * 63 + ".example.com:1"])
def test_valid_host_names_are_accepted(address):
    assert parse_config(cfg({"worker": [address, "b:1"]})).task.address == address
