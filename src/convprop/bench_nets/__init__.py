"""Whole networks, convprop against PyTorch: a training step and inference, layer by layer.

For every shipped model (``convprop.models.MODELS``, on 1×28×28 inputs) and a ResNet-20 on
3×32×32 (:class:`~convprop.bench_nets.nets.ResNet20`), with the same initial weights in both
libraries, it times a full training step (forward, cross-entropy, backward, SGD with momentum
0.9) at the training batch, and the inference forward at batch 1 and at the training batch.
Each library runs alone in its own process, the processes alternate for several rounds, and
the report gives medians of the per-process medians, the ratio convprop / PyTorch, and the
training step's time by layer type (conv, batchnorm, activation, pool, linear, loss,
residual add, optimizer, framework overhead) in both libraries.

    python benchmarks/bench_nets.py                       # all networks, 5 rounds, 2 threads
    python benchmarks/bench_nets.py --models resnet20 --batch-size resnet20=64
    python benchmarks/bench_nets.py --quick --models lenet5 --json

Modules: ``nets`` (ResNet-20 and the cases), ``torch_nets`` (the PyTorch twins), ``worker``
(one library in one process), ``profile`` (the time by layer type), ``runner`` (the
processes, the medians and the table).
"""

from convprop.bench_nets.nets import CASES, ResNet20
from convprop.bench_nets.runner import format_report, main, run

__all__ = ["CASES", "ResNet20", "format_report", "main", "run"]
