"""``convprop explain`` topics: every number printed equals the naive references of
tests/reference.py and tests/reference_layers.py, and every label cited is defined in the
section of docs/derivations.md that the text names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convprop.cli import main
from convprop.explain import TOPICS, chain, conv, fft, im2col, pool
from convprop.explain._text import Example
from convprop.explain_graph import example_arrays
from reference import conv2d_db_ref, conv2d_dw_ref, conv2d_dx_ref, conv2d_ref
from reference_layers import (
    avg_pool2d_backward_ref,
    avg_pool2d_ref,
    max_pool2d_backward_ref,
    max_pool2d_ref,
)

ROOT = Path(__file__).resolve().parents[2]
DERIVATIONS = (ROOT / "docs" / "derivations.md").read_text(encoding="utf-8")
ALL_EXAMPLES = {
    "conv": conv.examples,
    "pool": pool.examples,
    "chain": chain.examples,
    "im2col": im2col.examples,
    "fft": fft.examples,
}


def close(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-12, atol=1e-12)


def by_title(examples: list[Example], start: str) -> Example:
    (found,) = [e for e in examples if e.title.startswith(start)]
    return found


# -- conv ----------------------------------------------------------------------------------------
CONV_WITH_GRADIENTS = [
    "One channel",
    "Stride 2",
    "Dilation 2",
    "Padding 1",
    "Two input channels",
    "The words",
]


@pytest.mark.parametrize("start", CONV_WITH_GRADIENTS)
def test_conv_examples_equal_the_references_F1_B1_B2_B3(start: str) -> None:
    example = by_title(conv.examples(), start)
    a, settings = example.arrays, example.settings
    b = a.get("b")
    close(a["y"], conv2d_ref(a["x"], a["w"], b, **settings))
    close(a["dx"], conv2d_dx_ref(a["dy"], a["w"], a["x"].shape, **settings))
    if "dw" in a:
        close(a["dw"], conv2d_dw_ref(a["x"], a["dy"], a["w"].shape, **settings))
    if "db" in a:
        close(a["db"], conv2d_db_ref(a["dy"]))


def test_conv_one_dimension_jacobian_columns_are_the_flipped_kernel_B3() -> None:
    a = conv.one_dimensional().arrays
    close(a["y"], conv2d_ref(a["x"], a["w"], padding=((0, 0), (1, 1))))
    for j in range(6):
        unit = np.zeros((1, 1, 1, 6))
        unit[0, 0, 0, j] = 1.0
        row = conv2d_dx_ref(unit, a["w"], (1, 1, 1, 5), padding=((0, 0), (1, 1)))
        close(a["jacobian"][j], row.ravel())
    close(a["jacobian"][:, 1], [0, 100, 10, 0, 0, 0])


def test_conv_worked_example_two_has_the_numbers_of_the_derivations() -> None:
    a = conv.one_channel().arrays
    close(a["y"][0, 0], [[0.5, 2.5], [6.5, 8.5]])
    close(a["dw"][0, 0], [[22, 27], [37, 42]])
    close(a["dx"][0, 0], [[1, 1, -2], [2, 6, 7], [0, -2, -3]])
    close(conv.bias_gradient().arrays["db"], [5.0])


def test_conv_stride_two_uses_the_zero_upsampled_dy_and_leaves_the_remainder_zero() -> None:
    a = by_title(conv.examples(), "Stride 2").arrays
    expected = np.zeros((3, 3))
    expected[::2, ::2] = a["dy"][0, 0]
    close(a["dy_up"], expected)
    assert np.all(a["dx"][0, 0, 4, :] == 0) and np.all(a["dx"][0, 0, :, 4] == 0)


def test_conv_padding_dx_pad_is_the_gradient_on_the_explicitly_padded_input() -> None:
    a = conv.padding().arrays
    close(a["x_pad"], np.pad(a["x"][0, 0], 1))
    dx_pad = conv2d_dx_ref(a["dy"], a["w"], (1, 1, 5, 5))  # x_pad as the input, padding 0
    close(a["dx_pad"], dx_pad[0, 0])
    close(a["dx"][0, 0], a["dx_pad"][1:-1, 1:-1])


def test_conv_dilation_kernel_has_zeros_between_taps() -> None:
    a = conv.dilation().arrays
    close(a["w_dil"][::2, ::2], a["w"][0, 0])
    assert a["w_dil"][1, :].tolist() == [0, 0, 0] and a["w_dil"][:, 1].tolist() == [0, 0, 0]


def test_conv_words_true_convolution_is_the_correlation_with_the_rotated_kernel() -> None:
    a = conv.the_words().arrays
    rotated = a["w"][:, :, ::-1, ::-1]
    close(a["true_convolution"], conv2d_ref(a["x"], rotated)[0, 0])


def test_conv_many_channels_shapes() -> None:
    a = conv.many_channels().arrays
    assert a["y_shape"].tolist() == [1, 6, 28, 28] and a["dx_shape"].tolist() == [1, 3, 32, 32]


# -- pool ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("index", [0, 1])
def test_pool_max_routing_equals_the_reference_MP1_MP3(index: int) -> None:
    example = pool.examples()[index]
    a, stride = example.arrays, example.settings["stride"]
    y, winner = max_pool2d_ref(a["x"], (2, 2), (stride, stride), (0, 0))
    close(a["y"], y)
    close(a["dx"], max_pool2d_backward_ref(a["dy"], winner, a["x"].shape))
    rows = winner[..., 0] - np.arange(y.shape[2])[:, None] * stride
    cols = winner[..., 1] - np.arange(y.shape[3])[None, :] * stride
    close(a["argmax"], rows * 2 + cols)  # (MP2): the tap t = r·S + s of the winner
    close([a["dx"].sum()], [a["dy"].sum()])


def test_pool_max_ties_go_to_the_first_cell_MP2() -> None:
    a = pool.examples()[0].arrays
    # window (1, 0) holds 6, 6: the first (row-major) cell x[2, 0] takes the whole dy
    assert a["dx"][0, 0, 2, 0] == a["dy"][0, 0, 1, 0] and a["dx"][0, 0, 2, 1] == 0


def test_pool_average_spreading_equals_the_reference_AP2_AP3() -> None:
    a = pool.average_spreading().arrays
    close(a["y"], avg_pool2d_ref(a["x"], (2, 2), (1, 1), (0, 0)))
    close(a["dx"], avg_pool2d_backward_ref(a["dy"], a["x"].shape, (2, 2), (1, 1), (0, 0)))


@pytest.mark.parametrize("include", [True, False])
def test_pool_average_with_padding_equals_the_reference_AP1_AP3(include: bool) -> None:
    a = pool.average_with_padding().arrays
    name = "with_pad" if include else "without_pad"
    y = avg_pool2d_ref(a["x"], (3, 1), (2, 1), (1, 0), ceil_mode=True, count_include_pad=include)
    close(a[f"y_{name}"], y)
    dx = avg_pool2d_backward_ref(a["dy"], a["x"].shape, (3, 1), (2, 1), (1, 0), include)
    close(a[f"dx_{name}"], dx)


# -- chain ---------------------------------------------------------------------------------------
def test_chain_every_delta_equals_the_references() -> None:
    examples = chain.examples(seed=2)
    s: dict[str, Any] = {}
    for example in examples:
        s.update(example.arrays)
    a = example_arrays(2)
    h1 = conv2d_ref(a["x"], a["w1"], a["b1"], padding=1)
    r1 = np.maximum(h1, 0.0)
    p1, winner = max_pool2d_ref(r1, (2, 2), (2, 2), (0, 0))
    logits = conv2d_ref(p1, a["w2"], a["b2"])[:, :, 0, 0]
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    close(s["probabilities"], probabilities)
    dlogits = (probabilities - np.eye(3)[a["labels"]]) / 2
    close(s["dlogits"], dlogits)
    dh2 = dlogits.reshape(2, 3, 1, 1)
    close(s["dh2"], dh2)
    close(s["dp1"], conv2d_dx_ref(dh2, a["w2"], p1.shape))
    close(s["dw2"], conv2d_dw_ref(p1, dh2, a["w2"].shape))
    close(s["db2"], conv2d_db_ref(dh2))
    dr1 = max_pool2d_backward_ref(s["dp1"], winner, r1.shape)
    close(s["dr1"], dr1)
    dh1 = dr1 * (h1 > 0)
    close(s["dh1"], dh1)
    close(s["dx"], conv2d_dx_ref(dh1, a["w1"], a["x"].shape, padding=1))
    close(s["dw1"], conv2d_dw_ref(a["x"], dh1, a["w1"].shape, padding=1))
    close(s["db1"], conv2d_db_ref(dh1))
    for key in ("dx", "dw1", "db1", "dw2", "db2"):
        np.testing.assert_array_equal(s["graph_" + key], s[key], err_msg=key)


# -- im2col --------------------------------------------------------------------------------------
def naive_cols(x: np.ndarray, R: int, S: int) -> np.ndarray:
    """(I1) for one image, stride 1, no padding: row (c, r, s), column (p, q)."""
    _, C, H, W = x.shape
    P, Q = H - R + 1, W - S + 1
    cols = np.zeros((C * R * S, P * Q))
    for c in range(C):
        for r in range(R):
            for s in range(S):
                for p in range(P):
                    for q in range(Q):
                        cols[(c * R + r) * S + s, p * Q + q] = x[0, c, p + r, q + s]
    return cols


@pytest.mark.parametrize("index", [0, 1])
def test_im2col_matrices_equal_the_references_I1_I5(index: int) -> None:
    a = im2col.examples()[index].arrays
    x, w, dy = a["x"], a["w"], a["dy"]
    K, _, R, S = w.shape
    close(a["cols"], naive_cols(x, R, S))
    close(a["Y"], conv2d_ref(x, w).reshape(K, -1))
    close(a["dW"], conv2d_dw_ref(x, dy, w.shape).reshape(K, -1))
    close(a["dcols"], w.reshape(K, -1).T @ dy.reshape(K, -1))
    close(a["dx"], conv2d_dx_ref(dy, w, x.shape))


def test_im2col_copies_count_the_windows_of_each_pixel() -> None:
    copies = im2col.one_channel().arrays["copies"][0, 0]
    close(copies, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


# -- fft -----------------------------------------------------------------------------------------
def test_fft_theorem_equals_circular_loops() -> None:
    a = fft.theorem().arrays
    L = 4
    circular = [sum(a["a"][v] * a["b"][(u - v) % L] for v in range(L)) for u in range(L)]
    close(a["convolution"], circular)
    close(a["convolution"], np.real(np.fft.ifft(np.fft.fft(a["a"]) * np.fft.fft(a["b"]))))


@pytest.mark.parametrize("index", [1, 2])
def test_fft_examples_equal_the_references_T2_T3(index: int) -> None:
    example = fft.examples()[index]
    a, stride = example.arrays, example.settings.get("stride", 1)
    close(np.ravel(a["y"]), conv2d_ref(a["x"], a["w"], stride=stride).ravel())
    close(np.ravel(a["dx"]), conv2d_dx_ref(a["dy"], a["w"], a["x"].shape, stride=stride).ravel())
    if "dw" in a:
        close(np.ravel(a["dw"]), conv2d_dw_ref(a["x"], a["dy"], a["w"].shape).ravel())


# -- every topic: the labels and their sections --------------------------------------------------
def _section(number: int) -> str:
    start = DERIVATIONS.index(f"\n## {number}. ")
    end = DERIVATIONS.find("\n## ", start + 1)
    return DERIVATIONS[start : end if end > 0 else len(DERIVATIONS)]


def cited(cites: str) -> list[tuple[str, int]]:
    """(label, section) pairs of a citation such as '(F1) §3, (B1) (B2) §4 Step 2'."""
    pairs = []
    for chunk in re.split(r"[,;]", cites):
        section = re.search(r"§(\d+)", chunk)
        for label in re.findall(r"\(([A-Z]{1,5}\d{1,2}[A-Z]?)\)", chunk):
            assert section is not None, f"{label} has no section in {cites!r}"
            pairs.append((label, int(section.group(1))))
    return pairs


@pytest.mark.parametrize("topic", sorted(ALL_EXAMPLES))
def test_every_example_names_its_labels_in_the_section_that_defines_them(topic: str) -> None:
    examples = ALL_EXAMPLES[topic]()
    assert examples
    for example in examples:
        assert "§" in example.cites, example.title
        for label, section in cited(example.cites):
            assert f"({label})" in _section(section), f"{topic}: {label} is not in §{section}"


def test_the_citation_parser_reads_ranges_and_steps() -> None:
    assert cited("(I1)-(I5) §5, (B3) §4 Step 2") == [("I1", 5), ("I5", 5), ("B3", 4)]


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("topic", [t for t in TOPICS if t != "graph"])
def test_cli_prints_each_topic_with_its_labels(
    topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", topic]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"convprop explain {topic}:")
    assert "docs/derivations.md]" in out and "§" in out
    assert "DIFFER" not in out


def test_cli_explain_needs_a_topic_or_a_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "convprop: explain: nothing to explain; expected a TOPIC (conv, pool, "
        "chain, im2col, fft, graph) or --html PAGE.html, got neither\n"
    )


def test_cli_writes_the_page_and_a_topic_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep" / "page.html"
    assert main(["explain", "pool", "--html", str(path)]) == 0
    assert capsys.readouterr().out.startswith("convprop explain pool:")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "/*CONVPROP:" not in text
    assert "http://" not in text and "https://" not in text  # nothing to fetch
