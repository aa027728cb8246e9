"""Whole networks, convprop vs PyTorch: training step and inference, each library in its own
process, alternating rounds, medians, the ratio, and the training step by layer type.

    python benchmarks/bench_nets.py                       # every network, 5 rounds, 2 threads
    python benchmarks/bench_nets.py --models resnet-mini resnet20 --rounds 3
    python benchmarks/bench_nets.py --batch-size resnet20=64 --threads 4
    python benchmarks/bench_nets.py --quick --models lenet5 --json

Training batches: lenet and lenet5 64, resnet-mini 32 (1×28×28), ResNet-20 128 (3×32×32).
The code is convprop.bench_nets (also ``python -m convprop.bench_nets``).
"""

from __future__ import annotations

import sys

from convprop.bench_nets import main
from convprop.process import configure_process

if __name__ == "__main__":
    configure_process(restart=True)  # the workers inherit OpenBLAS's spin setting
    sys.exit(main())
