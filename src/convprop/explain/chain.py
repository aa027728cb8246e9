"""``convprop explain chain``: the backward pass of conv → ReLU → max-pool → conv → loss, every
δ and every gradient printed, layer by layer.

The chain is ``convprop.explain_graph.by_hand_steps``: the op pairs of convprop.functional
called one after another, forward then backward. Each δ is checked here against the rule of
its layer computed by hand (softmax minus one-hot, routing to the arg-max, the ReLU mask,
the 1x1 products of the second conv, the correlations of the first), and the gradients
against the recorded graph (``by_graph``), bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop.explain._by_hand import correlate
from convprop.explain._text import Example, block, fmt, render, require_equal
from convprop.explain_graph import by_graph, by_hand_steps, example_arrays


def planes(name: str, array: numpy.ndarray) -> list[str]:
    """One block per (n, c) plane of a 4-D array, as ``name[n, c] =``."""
    lines = []
    for n in range(array.shape[0]):
        for c in range(array.shape[1]):
            lines += block(f"{name}[{n}, {c}]", array[n, c])
    return lines


def forward(a: dict[str, numpy.ndarray], s: dict[str, Any]) -> Example:
    """The forward pass: every activation, the probabilities and the loss."""
    shifted = s["logits"] - s["logits"].max(axis=1, keepdims=True)
    probabilities = numpy.exp(shifted) / numpy.exp(shifted).sum(axis=1, keepdims=True)
    picked = probabilities[numpy.arange(2), a["labels"]]
    require_equal("(CE3) the mean of -log p[label]", [s["loss"]], [-numpy.log(picked).mean()])
    return Example(
        "Forward: x (2, 1, 6, 6) -> conv 3x3 pad 1 -> ReLU -> max-pool 2 -> conv 3x3 -> loss",
        "(F1) §3, (A2) §12, (MP1) §10, (FL1) §11, (CE3) §15",
        [
            *planes("x", a["x"]),
            *planes("w1", a["w1"]),
            f"b1 = {fmt(a['b1'])}",
            "h1 = conv(x, w1) + b1, padding 1 (F1):",
            *planes("h1", s["h1"]),
            "r1 = relu(h1) (A2):",
            *planes("r1", s["r1"]),
            "p1 = the maxima of r1's 2x2 windows (MP1):",
            *planes("p1", s["p1"]),
            f"w2 {a['w2'].shape} (three filters over p1's two channels), b2 = {fmt(a['b2'])}",
            *block("logits = conv(p1, w2) + b2, flattened (F1, FL1)", s["logits"]),
            *block("softmax(logits)", probabilities),
            f"labels = {fmt(a['labels'])}: loss = mean of -log p[label] = {float(s['loss']):.6f}",
        ],
        {**{k: a[k] for k in ("x", "w1", "b1", "w2", "b2")}, "probabilities": probabilities},
    )


def loss_and_second_conv(a: dict[str, numpy.ndarray], s: dict[str, Any]) -> Example:
    """δ at the logits, through flatten and the second conv (whose dy is 1x1)."""
    N = len(a["labels"])
    shifted = s["logits"] - s["logits"].max(axis=1, keepdims=True)
    probabilities = numpy.exp(shifted) / numpy.exp(shifted).sum(axis=1, keepdims=True)
    one_hot = numpy.eye(3)[a["labels"]]
    require_equal("(CE4) (softmax - one-hot) / N", s["dlogits"], (probabilities - one_hot) / N)
    dh2 = s["dh2"][:, :, 0, 0]  # (N, K): conv 2's output is 1x1
    # with a 1x1 dy, (B2) is a product per image and (B3) returns the filters scaled
    require_equal("(B2) dw2", s["dw2"], numpy.einsum("nk,nchw->kchw", dh2, s["p1"]))
    require_equal("(B3) dp1", s["dp1"], numpy.einsum("nk,kchw->nchw", dh2, a["w2"]))
    require_equal("(B1) db2", s["db2"], dh2.sum(axis=0))
    return Example(
        "Backward through the loss, flatten and the second conv",
        "(CE4) §15, (FL2) §11, (B1) (B2) (B3) §4",
        [
            *block("dlogits = (softmax - one-hot) / N (CE4)", s["dlogits"]),
            f"dh2 = dlogits reshaped to {s['dh2'].shape} (FL2)",
            "conv 2's output is 1x1, so each filter k's dy is one number per image:",
            "dp1[n] = sum over k of dh2[n, k]·w2[k] (B3), dw2[k] = sum over n of dh2[n, k]·p1[n]",
            "(B2), db2 = sum over n of dh2 (B1):",
            *planes("dp1", s["dp1"]),
            *planes("dw2", s["dw2"]),
            f"db2 = {fmt(s['db2'])}",
        ],
        {k: s[k] for k in ("dlogits", "dh2", "dp1", "dw2", "db2")},
    )


def pool_and_relu(s: dict[str, Any]) -> Example:
    """δ through the max-pool (routing) and the ReLU (the mask of h1 > 0)."""
    routed = numpy.zeros_like(s["r1"])
    N, C, P, Q = s["dp1"].shape
    for n, c, p, q in numpy.ndindex(N, C, P, Q):
        r, t = divmod(int(s["argmax"][n, c, p, q]), 2)
        routed[n, c, 2 * p + r, 2 * q + t] += s["dp1"][n, c, p, q]
    require_equal("(MP3) routing", s["dr1"], routed, exact=True)
    require_equal("(A1) relu mask", s["dh1"], s["dr1"] * (s["h1"] > 0))
    stopped = int(numpy.count_nonzero((s["dr1"] != 0) & (s["h1"] <= 0)))
    return Example(
        "Backward through the max-pool and the ReLU",
        "(MP3) §10, (A1) (A3) §12",
        [
            "each dp1 goes to the cell that won its 2x2 window (MP3), every other cell gets 0:",
            *planes("dr1", s["dr1"]),
            "then dh1 = dr1 ⊙ relu'(h1), the mask h1 > 0 (A1). A window whose four cells are",
            "all 0 after the ReLU is a tie: its δ goes to its first cell (MP2) and stops at",
            f"the mask there ({stopped} of the {s['dp1'].size} routed δs stop here):",
            *planes("dh1", s["dh1"]),
        ],
        {k: s[k] for k in ("dr1", "dh1")},
    )


def first_conv(a: dict[str, numpy.ndarray], s: dict[str, Any]) -> Example:
    """The gradients of the first conv: dw1 and db1 summed over the batch, and dx."""
    x_pad = numpy.pad(a["x"], ((0, 0), (0, 0), (1, 1), (1, 1)))
    for k in range(2):
        by_hand = sum(correlate(x_pad[n, 0], s["dh1"][n, k]) for n in range(2))
        require_equal(f"(B2) dw1[{k}]", s["dw1"][k, 0], by_hand)
    require_equal("(B1) db1", s["db1"], s["dh1"].sum(axis=(0, 2, 3)))
    return Example(
        "Backward through the first conv",
        "(B1) (B2) (B3) §4",
        [
            "dw1[k] = sum over the two images of x_pad[n] correlated with dh1[n, k] (B2):",
            *planes("dw1", s["dw1"]),
            f"db1 = sum of dh1 over n, p, q (B1) = {fmt(s['db1'])}",
            "dx = full correlation of dh1 with rot180(w1), cropped by the padding (B3):",
            *planes("dx", s["dx"]),
        ],
        {k: s[k] for k in ("dw1", "db1", "dx")},
    )


def against_the_graph(a: dict[str, numpy.ndarray], s: dict[str, Any]) -> Example:
    """The same net on Tensors: loss.backward() gives the same bits."""
    graph, _ = by_graph(a)
    for key in ("dx", "dw1", "db1", "dw2", "db2"):
        require_equal(f"{key}: graph = chain", graph[key], s[key], exact=True)
    return Example(
        "Checked against the library: the recorded graph gives the same bits",
        "(GR1) (GR2) (GR3) §20",
        [
            "The same net written with convprop.nn.functional on Tensors, then",
            "loss.backward(): the graph calls the same backward pairs in the same order, so",
            "dx, dw1, db1, dw2 and db2 are equal bit for bit: "
            + ", ".join(f"|{k}| = {numpy.linalg.norm(graph[k]):.6f}" for k in ("dw1", "dw2")),
        ],
        {f"graph_{k}": graph[k] for k in ("dx", "dw1", "db1", "dw2", "db2")},
    )


def examples(seed: int = 0) -> list[Example]:
    """Every example of ``convprop explain chain`` on ``example_arrays(seed)``."""
    a = example_arrays(seed)
    s = by_hand_steps(a)
    return [
        forward(a, s),
        loss_and_second_conv(a, s),
        pool_and_relu(s),
        first_conv(a, s),
        against_the_graph(a, s),
    ]


def explain_chain() -> str:
    """The text of ``convprop explain chain``."""
    heading = (
        "convprop explain chain: the chain rule through a small CNN, one op pair at a time\n"
        "(convprop.explain_graph.by_hand_steps; float64, two images, printed to 3 decimals)."
    )
    return render(examples(), heading)
