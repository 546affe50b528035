"""The RINGTRAIN_* table (ringrun.env): one stdlib-only module read by launcher and library."""

from __future__ import annotations

import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest
from ringrun import env

import ringtrain
from ringtrain import env as library_env
from ringtrain.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "ringtrain").rglob("*.py")) + sorted((ROOT / "launcher").rglob("*.py"))
TABLE = ROOT / "launcher" / "ringrun" / "env.py"


def test_help_env_lists_every_variable_without_importing_the_library():
    code = ("import sys; from ringrun import cli; code = cli.main(['--help-env']); "
            "assert 'ringtrain' not in sys.modules, sorted(m for m in sys.modules "
            "if m.startswith('ringtrain')); sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         timeout=60, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    listed = re.findall(r"^(RINGTRAIN_\w+) +default=", out.stdout, re.MULTILINE)
    assert listed == list(env.VARIABLES)


def test_every_variable_named_in_the_code_is_in_the_table():
    named = set()
    for path in SOURCES:
        named.update(re.findall(r"\bRINGTRAIN_[A-Z_]*[A-Z]\b", path.read_text()))
    assert named - set(env.VARIABLES) == set()
    # and nothing in the table is dead (RINGTRAIN_DEVICE was declared and never read)
    used = set()
    for path in SOURCES:
        if path != TABLE:
            used.update(re.findall(r"\bRINGTRAIN_[A-Z_]*[A-Z]\b", path.read_text()))
    assert set(env.VARIABLES) - used == set()


def _environ_reads(path: pathlib.Path) -> list[str]:
    """RINGTRAIN_* names read straight from an environment mapping in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("get", "pop") and node.args:
            key = node.args[0]
        elif isinstance(node, ast.Subscript):
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str) \
                and key.value.startswith("RINGTRAIN_"):
            target = node.func.value if isinstance(node, ast.Call) else node.value
            if "environ" in ast.unparse(target):
                found.append(f"{path.relative_to(ROOT)}: {ast.unparse(node)}")
    return found


def test_the_launchers_cluster_mode_reads_variables_only_through_the_table():
    assert _environ_reads(ROOT / "launcher" / "ringrun" / "cluster.py") == []


def test_the_table_imports_only_the_standard_library():
    tree = ast.parse(TABLE.read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}


def test_library_reads_the_same_table():
    assert library_env.VARIABLES is env.VARIABLES
    assert ringtrain.env.describe() == env.describe()


@pytest.mark.parametrize("name,raw,value", [
    ("RINGTRAIN_TIMEOUT", None, 30.0),
    ("RINGTRAIN_TIMEOUT", "  ", 30.0),            # blank means unset
    ("RINGTRAIN_TIMEOUT", "2.5", 2.5),
    ("RINGTRAIN_STALL_WARNING", "0", 0.0),        # 0 turns the warning off
    ("RINGTRAIN_CHECK_COLLECTIVES", "off", False),
    ("RINGTRAIN_BUCKET_BYTES", "1024", 1024),
])
def test_values_parse(name, raw, value):
    environ = {} if raw is None else {name: raw}
    assert env.get(name, environ) == value


@pytest.mark.parametrize("name,raw", [
    ("RINGTRAIN_TIMEOUT", "0"), ("RINGTRAIN_TIMEOUT", "-1"), ("RINGTRAIN_TIMEOUT", "nan"),
    ("RINGTRAIN_JOIN_TIMEOUT", "inf"), ("RINGTRAIN_JOIN_TIMEOUT", "soon"),
    ("RINGTRAIN_STALL_WARNING", "-1"), ("RINGTRAIN_CHECK_COLLECTIVES", "maybe"),
    ("RINGTRAIN_BUCKET_BYTES", "²"), ("RINGTRAIN_BUCKET_BYTES", "9" * 5000),
    ("RINGTRAIN_GROUP", "-1"),
])
def test_bad_values_name_the_variable_on_both_sides(name, raw, monkeypatch):
    with pytest.raises(env.EnvError, match=name):
        env.get(name, {name: raw})
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=name):
        library_env.get(name)


def test_unknown_name_points_at_the_table():
    with pytest.raises(KeyError, match="launcher/ringrun/env.py"):
        env.get("RINGTRAIN_NOPE")
