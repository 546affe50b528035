"""The worker side of ``ringtrain.launch``: ``python -m ringtrain._launched DIR``."""

import sys
from pathlib import Path

from ringtrain.spawn import worker_main

sys.exit(worker_main(Path(sys.argv[1])))
