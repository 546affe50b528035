"""Run a worker program with the graph core on the NumPy-backed stand-in for CuPy.

``on_fake_device.py SCRIPT ARGS...`` (under ringrun, with ``RINGTRAIN_DEVICE=cuda``): the
machine seems to have one GPU (the workers share it, so init() stages GPU arrays over MPI),
Sessions get ``tests/fake_device.py``'s namespace, the staged communicator its adapter, and SCRIPT runs as ``__main__``. At the end
the worker prints ``FAKE-DEVICE`` with how many Sessions asked for the GPU and how many arrays
went to it, so the test knows the device path ran.
"""

import os
import runpy
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fake_device import FakeDevice, FakeDeviceArrays

from ringtrain import devices
from ringtrain.comm import device
from ringtrain.core import placement

fake = FakeDevice()
asked = []
devices.cuda_device_count = lambda: 1
placement.gpu_namespace = lambda index: asked.append(index) or fake
device.ADAPTERS.append(FakeDeviceArrays())     # the staged communicator moves its arrays

script, *args = sys.argv[1:]
sys.argv = [script, *args]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    print(f"FAKE-DEVICE sessions={len(asked)} gpus={sorted(set(asked))} "
          f"to_device={fake.to_device} to_host={fake.to_host} "
          f"staged={FakeDeviceArrays.staged}", flush=True)
