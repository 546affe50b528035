"""What the torch test programs share: report a finished check, expect an error, and end with
the count of checks (imported by torch_api.py, torch_horovod_parity.py, torch_process_sets.py)."""

import ringtrain.torch as hvd

done = []


def ok(name):
    done.append(name)
    if hvd.rank() == 0:
        print(f"OK {name}", flush=True)


def expect_raises(kind, fn, *words):
    """Call ``fn``; it must raise ``kind`` whose message holds every word. Returns the message."""
    try:
        fn()
    except kind as exc:
        text = str(exc)
        for word in words:
            assert word in text, f"message {text!r} lacks {word!r}"
        return text
    raise AssertionError(f"{fn} did not raise {kind.__name__}")


def finish(expected):
    """Every check ran (none skipped by a broken control flow); rank 0 says so."""
    assert len(done) == expected, done
    if hvd.rank() == 0:
        print(f"DONE {len(done)}", flush=True)
