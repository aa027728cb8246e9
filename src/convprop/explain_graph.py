"""``convprop explain graph``: the backward pass of a small net, by hand and by the graph.

The net is conv → ReLU → max-pool → conv → flatten → cross-entropy on a 2-image batch.
First the chain rule is written out with the pairs of convprop.functional, one line per op
(the teaching path); then the same net runs on Tensors, and the recorded nodes are listed in
the order ``loss.backward()`` visits them (GR3), each with its shapes and the equations of
its backward. The two sets of gradients are compared bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy

import convprop.nn.functional as F
from convprop.autograd import Tensor, nodes_in_backward_order
from convprop.functional import (
    conv2d_backward,
    conv2d_forward,
    flatten_backward,
    flatten_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    relu_backward,
    relu_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)


def example_arrays(seed: int = 0) -> dict[str, numpy.ndarray]:
    """x (2, 1, 6, 6), labels (2,), w1 (2, 1, 3, 3), b1 (2,), w2 (3, 2, 3, 3), b2 (3,), float64."""
    rng = numpy.random.default_rng(seed)
    return {
        "x": rng.standard_normal((2, 1, 6, 6)),
        "labels": numpy.array([0, 2]),
        "w1": rng.standard_normal((2, 1, 3, 3)) * 0.5,
        "b1": rng.standard_normal(2) * 0.1,
        "w2": rng.standard_normal((3, 2, 3, 3)) * 0.5,
        "b2": rng.standard_normal(3) * 0.1,
    }


def by_hand(a: dict[str, numpy.ndarray]) -> dict[str, Any]:
    """The chain rule written out with the pairs: forward keeping each cache, then backward
    in reverse, each line the backward of one op. Returns the loss and every gradient."""
    steps = by_hand_steps(a)
    return {key: steps[key] for key in ("loss", "dx", "dw1", "db1", "dw2", "db2")}


def by_hand_steps(a: dict[str, numpy.ndarray]) -> dict[str, Any]:
    """``by_hand`` keeping every intermediate: the forward's h1, r1, p1, h2, logits and the
    backward's δ at each of them (dlogits, dh2, dp1, dr1, dh1), with the gradients."""
    h1, conv1 = conv2d_forward(a["x"], a["w1"], a["b1"], padding=1)  # (F1)  (2, 2, 6, 6)
    r1, relu1 = relu_forward(h1)  # (A2)
    p1, pool1 = max_pool2d_forward(r1, 2)  # (MP1)  (2, 2, 3, 3)
    h2, conv2 = conv2d_forward(p1, a["w2"], a["b2"])  # (F1)  (2, 3, 1, 1)
    logits, flat = flatten_forward(h2)  # (FL1)  (2, 3)
    loss, ce = softmax_cross_entropy_forward(logits, a["labels"])  # (CE3)

    dlogits = softmax_cross_entropy_backward(1.0, ce)  # (CE4)
    dh2 = flatten_backward(dlogits, flat)  # (FL2)
    dp1, dw2, db2 = conv2d_backward(dh2, conv2)  # (B3), (B2), (B1)
    dr1 = max_pool2d_backward(dp1, pool1)  # (MP3): to each window's arg-max
    dh1 = relu_backward(dr1, relu1)  # (A1), (A3): dy ⊙ f′(x)
    dx, dw1, db1 = conv2d_backward(dh1, conv1)  # (B3), (B2), (B1)
    forward = {"h1": h1, "r1": r1, "p1": p1, "h2": h2, "logits": logits, "loss": loss}
    deltas = {"dlogits": dlogits, "dh2": dh2, "dp1": dp1, "dr1": dr1, "dh1": dh1}
    grads = {"dx": dx, "dw1": dw1, "db1": db1, "dw2": dw2, "db2": db2}
    return {**forward, **deltas, **grads, "argmax": pool1.argmax}


def by_graph(a: dict[str, numpy.ndarray]) -> tuple[dict[str, Any], Tensor]:
    """The same net on Tensors; ``loss.backward()`` finds the order itself. Returns the
    gradients and the loss (whose graph is kept, for listing its nodes)."""
    x = Tensor(a["x"], requires_grad=True)
    w1, b1 = Tensor(a["w1"], True), Tensor(a["b1"], True)
    w2, b2 = Tensor(a["w2"], True), Tensor(a["b2"], True)
    h = F.max_pool2d(F.relu(F.conv2d(x, w1, b1, padding=1)), 2)
    loss = F.cross_entropy(F.flatten(F.conv2d(h, w2, b2), 1), a["labels"])
    loss.backward(retain_graph=True)
    grads = {"dx": x.grad, "dw1": w1.grad, "db1": b1.grad, "dw2": w2.grad, "db2": b2.grad}
    return {"loss": loss.data, **grads}, loss


def describe_nodes(loss: Tensor) -> list[str]:
    """One line per recorded node, in the order backward visits them (GR3)."""
    if loss.grad_fn is None:
        return ["(nothing recorded: the loss needs no gradient)"]
    lines = []
    for step, node in enumerate(nodes_in_backward_order(loss.grad_fn), start=1):
        inputs = ", ".join(
            str(shape) for shape, need in zip(node.input_shapes, node.needs, strict=True) if need
        )
        lines.append(
            f"  {step}. {node.name:<14} dy {node.y_shape!s:<14} -> d(inputs) {inputs:<36} "
            f"({node.labels})"
        )
    return lines


def explain_graph() -> str:
    """The text of ``convprop explain graph``."""
    arrays = example_arrays()
    hand = by_hand(arrays)
    graph, loss = by_graph(arrays)
    same = all(numpy.array_equal(hand[k], graph[k]) for k in hand)
    lines = [
        "The backward pass of conv -> ReLU -> max-pool -> conv -> flatten -> cross-entropy",
        "(x (2, 1, 6, 6), two filters 3x3 padding 1, pool 2, three filters 3x3; float64).",
        "",
        "Recorded nodes, in the order loss.backward() visits them (reverse order of",
        "recording, GR3); each calls its op's hand-written backward (GR1):",
        *describe_nodes(loss),
        "",
        "The same chain written by hand with convprop.functional's pairs",
        "(see convprop/explain_graph.py, by_hand) gives:",
        f"  loss {float(hand['loss']):.6f}",
        f"  db1 = {numpy.array2string(hand['db1'], precision=4)}   (B1: sum of dh1)",
        f"  db2 = {numpy.array2string(hand['db2'], precision=4)}   (B1: sum of dh2)",
        f"  |dw1| = {numpy.linalg.norm(hand['dw1']):.6f}, |dw2| = "
        f"{numpy.linalg.norm(hand['dw2']):.6f}, |dx| = {numpy.linalg.norm(hand['dx']):.6f}",
        "",
        "graph == by hand, bit for bit: " + ("yes" if same else "NO"),
    ]
    return "\n".join(lines)
