"""Worker for tests/test_diagnostics.py: the autopsy's stack dump while other threads churn.

Registers the watchdog's stack-dump file, starts two threads that call deep into recursion and
back without pause (their frames come and go), prints ``READY <dump path>`` and waits in
``hold`` until its standard input closes."""

import sys
import threading

from ringtrain.comm import watchdog


def churn():
    def deep(n):
        return [object()] if n == 0 else deep(n - 1)

    while True:
        deep(300)


def hold(path):
    print(f"READY {path}", flush=True)
    sys.stdin.read()


for _ in range(2):
    threading.Thread(target=churn, daemon=True).start()
hold(watchdog._stack_dump_file())
print("ALIVE", flush=True)
