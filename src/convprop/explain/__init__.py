"""``convprop explain``: the worked examples of docs/derivations.md, computed live, and the
interactive page of the backward pass.

One module per topic: ``conv`` (with ``conv_geometry`` and ``conv_channels``), ``pool``,
``chain``, ``im2col``, ``fft``; ``graph`` is ``convprop.explain_graph``. The page is
``page`` (its numbers: ``page_data``; its template, style and script: ``assets/``).
"""

from __future__ import annotations

import argparse
import importlib
import logging

from convprop.errors import ParameterError

log = logging.getLogger("convprop")

TOPICS: dict[str, tuple[str, str]] = {
    "conv": ("convprop.explain.conv:explain_conv", "the three gradients of a convolution: "
             "stride, dilation, padding, bias, two channels, the words convolution/correlation"),
    "pool": ("convprop.explain.pool:explain_pool",
             "max pooling's routing (with ties) and average pooling's spreading"),
    "chain": ("convprop.explain.chain:explain_chain",
              "every δ and gradient of conv → ReLU → max-pool → conv → loss"),
    "im2col": ("convprop.explain.im2col:explain_im2col",
               "the matrices: cols, W, dW = dY·colsᵀ, dcols = Wᵀ·dY, col2im"),
    "fft": ("convprop.explain.fft:explain_fft",
            "the convolution theorem on a small case, and the FFT path"),
    "graph": ("convprop.explain_graph:explain_graph",
              "the recorded nodes of a small net, by hand and by the graph"),
}  # fmt: skip
"""Each topic: ``module:function`` printing it (imported when asked for), one line of help."""


def explain_topic(topic: str) -> str:
    """The text of one topic of ``TOPICS``, computed now."""
    if topic not in TOPICS:
        raise ParameterError(
            f"explain: unknown topic; expected one of {list(TOPICS)}, got {topic!r}"
        )
    module, _, function = TOPICS[topic][0].partition(":")
    text: str = getattr(importlib.import_module(module), function)()
    return text


def explain_conv() -> str:
    """The text of ``convprop explain conv``."""
    return explain_topic("conv")


def explain_command(args: argparse.Namespace) -> int:
    """``convprop explain [TOPIC] [--html PAGE.html]``: print a topic, write the page, or both."""
    if args.topic is None and args.html is None:
        raise ParameterError(
            "explain: nothing to explain; expected a TOPIC (" + ", ".join(TOPICS) + ") or "
            "--html PAGE.html, got neither"
        )
    if args.topic is not None:
        print(explain_topic(args.topic))
    if args.html is not None:
        from convprop.explain.page import write_page

        path = write_page(args.html)
        log.info("wrote %s: open it in a browser (no server or network needed)", path)
    return 0


__all__ = ["TOPICS", "explain_command", "explain_conv", "explain_topic"]
