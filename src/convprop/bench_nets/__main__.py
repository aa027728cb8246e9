"""``python -m convprop.bench_nets``: the whole-network benchmark (see the package)."""

from __future__ import annotations

import sys

from convprop.bench_nets.runner import main

if __name__ == "__main__":
    sys.exit(main())
