"""``python -m pytest_edgeperf.worker``: run the child side of the worker protocol (worker/child.py)."""

import sys

from pytest_edgeperf.worker.child import die_with_parent, main

die_with_parent()
sys.exit(main())
