"""The recorded graph's own cost per op: recording a node and dispatching its backward.

On a tiny layer (so the math itself costs almost nothing) it times, per op:
  pair      the functional pair alone: NAME_forward then NAME_backward;
  graph     the same op through convprop.nn.functional on a Tensor that needs its
            gradient, then loss.backward() over a chain of such ops;
and prints the difference per op in microseconds: what the graph adds.

    python benchmarks/bench_graph.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy

import convprop
import convprop.nn.functional as F
from convprop.functional import linear_backward, linear_forward, relu_backward, relu_forward

CHAIN = 50


def _median_us(run: Callable[[], None], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    x = numpy.ones((1, 4), numpy.float32)
    w = numpy.ones((4, 4), numpy.float32) * 0.25

    def relu_pairs() -> None:
        y, caches = x, []
        for _ in range(CHAIN):
            y, cache = relu_forward(y)
            caches.append(cache)
        dy = numpy.ones_like(y)
        for cache in reversed(caches):
            dy = relu_backward(dy, cache)

    def relu_graph() -> None:
        y = convprop.tensor(x, requires_grad=True)
        for _ in range(CHAIN):
            y = F.relu(y)
        y.backward(numpy.ones_like(x))

    def linear_pairs() -> None:
        y, caches = x, []
        for _ in range(CHAIN):
            y, cache = linear_forward(y, w)
            caches.append(cache)
        dy = numpy.ones_like(y)
        for cache in reversed(caches):
            dy, _, _ = linear_backward(dy, cache)

    weight = convprop.nn.Parameter(w)

    def linear_graph() -> None:
        y = convprop.tensor(x, requires_grad=True)
        for _ in range(CHAIN):
            y = F.linear(y, weight)
        y.backward(numpy.ones_like(x))

    print(f"per op, median of {args.repeats} chains of {CHAIN} ops (forward + backward), x (1, 4)")
    print(f"{'op':<8} {'pair µs':>9} {'graph µs':>9} {'graph adds µs':>14}")
    for name, pairs, graph in (
        ("relu", relu_pairs, relu_graph),
        ("linear", linear_pairs, linear_graph),
    ):
        pair_us = _median_us(pairs, args.repeats) / CHAIN
        graph_us = _median_us(graph, args.repeats) / CHAIN
        print(f"{name:<8} {pair_us:>9.1f} {graph_us:>9.1f} {graph_us - pair_us:>14.1f}")


if __name__ == "__main__":
    main()
