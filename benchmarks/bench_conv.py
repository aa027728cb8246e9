"""conv2d forward/backward, convprop vs PyTorch (CPU), on the suite in conv_suite.json.

Same code as ``convprop bench``; run ``python benchmarks/bench_conv.py --help``.
"""

import sys

from convprop.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
