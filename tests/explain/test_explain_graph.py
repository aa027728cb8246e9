"""``convprop explain graph``: the chain by hand equals the graph, bit for bit, and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convprop.cli import main
from convprop.explain_graph import by_graph, by_hand, describe_nodes, example_arrays


def test_the_graph_calls_the_same_backwards_as_the_chain_by_hand_GR1_GR3() -> None:
    arrays = example_arrays(seed=3)
    hand = by_hand(arrays)
    graph, _ = by_graph(arrays)
    for key, value in hand.items():
        np.testing.assert_array_equal(graph[key], value, err_msg=key)


def test_the_chain_by_hand_equals_pytorch() -> None:
    a = example_arrays(seed=4)
    t = {k: torch.tensor(v, requires_grad=k not in ("labels",)) for k, v in a.items()}
    h = torch.nn.functional.conv2d(t["x"], t["w1"], t["b1"], padding=1)
    h = torch.nn.functional.max_pool2d(torch.relu(h), 2)
    logits = torch.nn.functional.conv2d(h, t["w2"], t["b2"]).flatten(1)
    loss = torch.nn.functional.cross_entropy(logits, t["labels"])
    loss.backward()
    hand = by_hand(a)
    assert float(hand["loss"]) == pytest.approx(loss.item(), rel=1e-13)
    for name in ("x", "w1", "b1", "w2", "b2"):
        grad = t[name].grad
        assert grad is not None
        np.testing.assert_allclose(hand["d" + name], grad.numpy(), rtol=1e-11, atol=1e-13)


def test_nodes_are_listed_in_reverse_order_of_recording_with_their_labels() -> None:
    _, loss = by_graph(example_arrays())
    lines = describe_nodes(loss)
    names = [line.split()[1] for line in lines]
    assert names == ["cross_entropy", "reshape", "conv2d", "max_pool2d", "relu", "conv2d"]
    assert "(CE4)" in lines[0] and "(MP3)" in lines[3] and "(B1, B2, B3)" in lines[5]


def test_cli_explain_graph_prints_the_nodes_and_the_bitwise_agreement(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explain", "graph"]) == 0
    out = capsys.readouterr().out
    assert "graph == by hand, bit for bit: yes" in out
    assert "1. cross_entropy" in out
