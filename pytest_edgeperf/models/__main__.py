"""``python -m pytest_edgeperf.models``: the old spelling of ``edgeperf models``, kept so scripts keep working."""

import sys

from pytest_edgeperf.models.command import main

if __name__ == "__main__":
    sys.exit(main())
