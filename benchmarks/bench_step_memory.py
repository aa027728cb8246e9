"""The arrays one training step of each network allocates, at their peak, in convprop.

For every network of ``convprop.bench_nets`` (the shipped models and ResNet-20, at their
training batch) it runs one step untimed, then a second under ``tracemalloc`` (NumPy reports
its arrays' data to it) and prints the peak of what that step allocated and still held at
once: the activations and caches the backward reads, the ops' workspaces and temporaries,
the gradients on their way back. The weights, their ``.grad`` and the momentum buffers exist
before the step and are not counted. What the recorded graph keeps alive shows here: an
intermediate result that no cache needs (a BatchNorm's output read only by a ReLU) is freed
during the forward.

    python benchmarks/bench_step_memory.py
    python benchmarks/bench_step_memory.py --models resnet20 --batch-size resnet20=64
"""

from __future__ import annotations

import argparse
import tracemalloc

from convprop import nn, optim
from convprop.autograd import Tensor
from convprop.bench_nets.nets import CASES
from convprop.bench_nets.worker import make_batch


def step_peak_bytes(model_name: str, batch: int) -> int:
    """Peak bytes held at once of the arrays allocated during one training step (zero_grad,
    forward, cross-entropy, backward, SGD with momentum), after one untimed step."""
    case = CASES[model_name]
    model = case.build(rng=0)
    x, labels = make_batch(case, batch)
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad()
        loss_fn(model(Tensor(x)), labels).backward()
        optimizer.step()

    step()  # the momentum buffers and every gradient exist from here on
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument(
        "--batch-size", action="append", default=[], metavar="MODEL=N",
        help="training batch of a model (default: its benchmark batch)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    batches = {name: case.batch for name, case in CASES.items()}
    for item in args.batch_size:
        name, _, size = item.partition("=")
        if name not in CASES or not size.isdigit() or int(size) < 1:
            parser.error(f"--batch-size: expected MODEL=N with N >= 1, got {item!r}")
        batches[name] = int(size)
    print(f"{'model':<12} {'batch':>6} {'peak MB':>9}")
    for name in args.models:
        peak = step_peak_bytes(name, batches[name])
        print(f"{name:<12} {batches[name]:>6} {peak / 2**20:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
