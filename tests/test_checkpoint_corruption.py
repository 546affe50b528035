"""Damaged checkpoints, indexes and Keras backups: one error that names the file, says what is
wrong and what to do, on every worker, never a raw zip/JSON/Unicode error or a hang."""

from __future__ import annotations

import io
import json
import textwrap

import numpy as np
import pytest
from conftest import run_ringrun

from ringtrain import checkpoint as ck
from ringtrain import errors
from ringtrain.checkpoint import fileformat


def _npz(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.frombuffer(v, dtype=np.uint8) for k, v in members.items()})
    return buffer.getvalue()


def _record(record: dict) -> bytes:
    return _npz(__meta__=json.dumps(record).encode())


GOOD = fileformat.dumps({"objects": {"x": np.full(500, 1.0)}, "save_counter": 1})
WEIGHTS_AT = GOOD.find(np.full(8, 1.0).tobytes())

DAMAGED_FILES = {
    "empty": (b"", "it is empty"),
    "truncated": (GOOD[: len(GOOD) // 2], "zip archive is truncated or corrupt"),
    "garbage": (b"\x00\x17junk" * 50, "not a NumPy .npz archive"),
    "npy-not-npz": (b"\x93NUMPY" + b"\x00" * 100, "not a NumPy .npz archive"),
    "flipped-byte": (GOOD[:WEIGHTS_AT + 3] + b"\x7f" + GOOD[WEIGHTS_AT + 4:],
                     "zip archive is truncated or corrupt"),
    "no-record": (_npz(other=b"123"), "holds no ringtrain record"),
    "record-not-utf8": (_npz(__meta__=b"\xff\xfe\xfa"), "record (__meta__) is not JSON text"),
    "record-not-json": (_npz(__meta__=b"{oops"), "record (__meta__) is not JSON text"),
    "record-a-list": (_npz(__meta__=b"[1, 2]"), "not a ringtrain checkpoint's"),
    "foreign-format": (_record({"format": "other", "version": 1, "tree": {}}),
                       "not a ringtrain checkpoint's"),
    "no-version": (_record({"format": fileformat.FORMAT, "tree": {}}), "no format version"),
    "missing-array": (_record({"format": fileformat.FORMAT, "version": 1,
                               "tree": {"objects": {"x": {"__array__": "gone"}},
                                        "save_counter": 1}}),
                      "names arrays the archive lacks"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_FILES))
def test_a_damaged_checkpoint_file_names_itself_and_the_fix(tmp_path, case):
    data, problem = DAMAGED_FILES[case]
    path = tmp_path / "ckpt-1.npz"
    path.write_bytes(data)
    with pytest.raises(errors.DataLossError) as info:
        ck.Checkpoint(x=np.zeros(500)).restore(tmp_path / "ckpt-1")
    message = str(info.value)
    assert f"checkpoint file {str(path)!r} is damaged: " in message, message
    assert problem in message and "Put back a good copy" in message, message


def test_a_checkpoint_of_a_newer_format_says_so(tmp_path):
    (tmp_path / "c.npz").write_bytes(
        _record({"format": fileformat.FORMAT, "version": 99, "tree": {}}))
    with pytest.raises(errors.DataLossError, match=r"written by a newer ringtrain \(checkpoint "
                                                   r"format version 99; this one reads up to 1"):
        ck.Checkpoint(x=np.zeros(1)).restore(tmp_path / "c")


DAMAGED_INDEXES = {
    "not-utf8": (b"\xff\xfe\x00\x81", "it is not text"),
    "junk-line": (b"hello world\n", "line 1 is not 'field: value'"),
    "unknown-field": (b'model_checkpoint_path: "ckpt-2"\nmodel_size: 3\n',
                      "line 2: unknown field"),
    "path-not-quoted": (b"model_checkpoint_path: 7\n", "line 1: unknown field or wrong kind"),
    "legacy-json-broken": (b'{"all": [', "not a valid index"),
    "legacy-json-wrong": (b'{"all": [1, 2]}', "not a valid index"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_INDEXES))
def test_a_damaged_index_names_itself_and_the_newest_checkpoint(tmp_path, case):
    manager = ck.CheckpointManager(ck.Checkpoint(x=np.ones(2)), tmp_path, max_to_keep=3)
    manager.save()
    manager.save()
    data, problem = DAMAGED_INDEXES[case]
    (tmp_path / "checkpoint").write_bytes(data)
    for reader in (lambda: ck.latest_checkpoint(tmp_path),
                   lambda: ck.CheckpointManager(ck.Checkpoint(x=np.ones(2)), tmp_path)):
        with pytest.raises(errors.DataLossError) as info:
            reader()
        message = str(info.value)
        assert f"checkpoint index {str(tmp_path / 'checkpoint')!r} is damaged: " in message
        assert problem in message, message
        assert 'holds ckpt-1, ckpt-2: to resume from the newest, replace the index with the ' \
               'line model_checkpoint_path: "ckpt-2"' in message, message


def test_the_index_is_tensorflows_text_format_and_the_old_json_still_reads(tmp_path):
    manager = ck.CheckpointManager(ck.Checkpoint(x=np.ones(2)), tmp_path, max_to_keep=2)
    for _ in range(3):
        manager.save()
    lines = (tmp_path / "checkpoint").read_text().splitlines()
    assert lines[:3] == ['model_checkpoint_path: "ckpt-3"',
                         'all_model_checkpoint_paths: "ckpt-2"',
                         'all_model_checkpoint_paths: "ckpt-3"'], lines
    assert [line.split(":")[0] for line in lines[3:]] == \
        ["all_model_checkpoint_timestamps"] * 2 + ["last_preserved_timestamp"]
    (tmp_path / "checkpoint").write_text(json.dumps({"latest": "ckpt-2", "all": ["ckpt-2"]}))
    assert ck.latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-2")


def test_a_damaged_keras_backup_says_to_delete_the_backup_dir(tmp_path):
    import ringtrain as tf

    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "backup.npz").write_bytes(GOOD[:100])
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    model.compile(loss="mse", optimizer="sgd")
    with pytest.raises(errors.DataLossError) as info:
        model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0,
                  callbacks=[tf.keras.callbacks.BackupAndRestore(str(backup))])
    message = str(info.value)
    assert f"checkpoint file {str(backup / 'backup.npz')!r} is damaged" in message, message
    assert f"Delete {str(backup)!r} to start training over" in message, message


@pytest.mark.parametrize("data", [b"", b"garbage" * 9, GOOD[:60]], ids=["empty", "junk", "cut"])
def test_a_damaged_keras_weights_file_names_itself(tmp_path, data):
    import ringtrain as tf

    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    path = tmp_path / "w.npz"
    path.write_bytes(data)
    with pytest.raises(errors.DataLossError, match=f"weights file {str(path)!r} is damaged or "
                                                   f"was not written by save_weights .* Load "
                                                   f"a good copy"):
        model.load_weights(str(path))


PROGRAM = textwrap.dedent("""
    import os
    import numpy as np
    import ringtrain as rt
    from ringtrain import checkpoint as ck
    rt.init()
    for name in sorted(os.listdir(os.environ["CORRUPT_DIR"])):
        try:
            ck.Checkpoint(x=np.zeros(500)).restore(os.path.join(os.environ["CORRUPT_DIR"], name))
            print(f"{name}: restored")
        except Exception as exc:
            print(f"{name}: {type(exc).__name__}: {exc}", flush=True)
""")


def test_every_worker_fails_on_every_damaged_file(tmp_path):
    for case, (data, _) in DAMAGED_FILES.items():
        (tmp_path / f"{case}.npz").write_bytes(data)
    result = run_ringrun(3, code=PROGRAM, env={"CORRUPT_DIR": str(tmp_path)}, timeout=90).check()
    for rank in range(3):
        lines = result.stdout_of(rank)
        assert len(lines) == len(DAMAGED_FILES), result.describe()
        for line, case in zip(lines, sorted(DAMAGED_FILES)):
            name = f"{case}.npz"
            prefix = f"{name}: DataLossError: " + ("on the chief: " if rank else "")
            assert line.startswith(prefix + f"checkpoint file {str(tmp_path / name)!r} is "
                                   f"damaged: "), line
            assert DAMAGED_FILES[case][1] in line, line
