"""``convprop explain fft``: the convolution theorem on a small case, and convprop's FFT path.

The spectra are computed here with numpy.fft, as §6 of docs/derivations.md writes them; the
results are compared with conv2d_forward / conv2d_backward of convprop, by its ``fft``
algorithm and by the ``direct`` sums, before they are printed.
"""

from __future__ import annotations

import numpy

from convprop.explain._by_hand import zero_upsample
from convprop.explain._text import Example, block, fmt, render, require_equal
from convprop.explain.conv_geometry import DIRECT, conv_gradients, integers
from convprop.functional.conv2d import conv2d_forward


def theorem() -> Example:
    """Circular convolution and correlation of two length-4 sequences, by loops and by DFT."""
    a = numpy.array([1.0, 2.0, 0.0, -1.0])
    b = numpy.array([2.0, 1.0, 0.0, 0.0])
    L = len(a)
    convolution = numpy.array([sum(a[v] * b[(u - v) % L] for v in range(L)) for u in range(L)])
    correlation = numpy.array([sum(a[(u + v) % L] * b[v] for v in range(L)) for u in range(L)])
    a_hat, b_hat = numpy.fft.fft(a), numpy.fft.fft(b)
    by_product = numpy.fft.ifft(a_hat * b_hat).real
    by_conjugate = numpy.fft.ifft(a_hat * numpy.conj(b_hat)).real
    require_equal("the convolution theorem", by_product, convolution)
    require_equal("the correlation theorem", by_conjugate, correlation)
    return Example(
        "The convolution theorem on length 4",
        "§6 Convolution theorem, one dimension",
        [
            f"a = {fmt(a)}, b = {fmt(b)}, L = 4: every index is taken mod 4 (circular)",
            f"circular convolution (a ⊛ b)[u] = Σ_v a[v]·b[u − v] = {fmt(convolution)}",
            f"â = DFT(a) = {fmt(a_hat)}",
            f"b̂ = DFT(b) = {fmt(b_hat)}",
            f"â·b̂ = {fmt(a_hat * b_hat)}",
            f"inverse DFT of â·b̂ = {fmt(by_product)}: equal, a product per frequency",
            f"circular correlation Σ_v a[u + v]·b[v] = {fmt(correlation)}",
            f"inverse DFT of â·conj(b̂) = {fmt(by_conjugate)}: equal (b is real)",
        ],
        {"a": a, "b": b, "convolution": convolution, "correlation": correlation},
    )


def one_dimension() -> Example:
    """conv2d on a 1 x 5 input by (T1)-(T4) with numpy.fft, against convprop's fft and direct."""
    x = numpy.array([1.0, 2.0, 3.0, 4.0, 5.0]).reshape(1, 1, 1, 5)
    w = numpy.array([1.0, 0.0, -1.0]).reshape(1, 1, 1, 3)
    dy = numpy.array([1.0, -2.0, 3.0]).reshape(1, 1, 1, 3)
    L = 5  # (T1): L >= Wp = 5; no wrap-around reaches the entries kept
    x_hat, w_hat = numpy.fft.fft(x.ravel(), L), numpy.fft.fft(w.ravel(), L)
    y_dense = numpy.fft.ifft(x_hat * numpy.conj(w_hat)).real  # (T2), a correlation
    dy_hat = numpy.fft.fft(dy.ravel(), L)
    dx = numpy.fft.ifft(dy_hat * w_hat).real  # (T3), a convolution: no flip needed
    dw = numpy.fft.ifft(x_hat * numpy.conj(dy_hat)).real[:3]  # (T4), read at the taps
    y_fft, cache_fft = conv2d_forward(x, w, algorithm="fft")
    y_direct, cache_direct = conv2d_forward(x, w, algorithm=DIRECT)
    dx_fft, dw_fft, _ = conv_gradients(dy, cache_fft)
    dx_direct, dw_direct, _ = conv_gradients(dy, cache_direct)
    for what, mine, fft, direct in (
        ("(T2) y", y_dense[:3], y_fft, y_direct),
        ("(T3) dx", dx, dx_fft, dx_direct),
        ("(T4) dw", dw, dw_fft, dw_direct),
    ):
        require_equal(what + " by numpy.fft", mine, direct.ravel())
        require_equal(what + " by convprop's fft", fft.ravel(), direct.ravel())
    return Example(
        "conv2d by FFT: x = [1..5], w = [1, 0, -1], no padding",
        "(T1) (T2) (T3) (T4) §6",
        [
            "(T1): transforms of length L = 5 >= Wp = 5 (zero-padding to Wp suffices)",
            f"x̂ = {fmt(x_hat)}",
            f"ŵ (w padded to 5) = {fmt(w_hat)}",
            f"inverse DFT of x̂·conj(ŵ) = y_dense = {fmt(y_dense)}",
            f"   its first P = 3 entries are y = {fmt(y_direct.ravel())} (T2); the other two",
            "   wrap around the end (window 3 reads x[3], x[4], x[0]) and are never read",
            f"dy = {fmt(dy.ravel())}, dŷ = DFT of dy padded to 5 = {fmt(dy_hat)}",
            f"dx = inverse DFT of dŷ·ŵ = {fmt(dx)} (T3): a convolution, so no rot180",
            f"dw = inverse DFT of x̂·conj(dŷ), at taps 0..2 = {fmt(dw)} (T4)",
            f"convprop, algorithm 'fft':    y {fmt(y_fft.ravel())}, dx {fmt(dx_fft.ravel())}, "
            f"dw {fmt(dw_fft.ravel())}",
            f"convprop, algorithm 'direct': y {fmt(y_direct.ravel())}, dx "
            f"{fmt(dx_direct.ravel())}, dw {fmt(dw_direct.ravel())}: equal",
        ],
        {"x": x, "w": w, "dy": dy, "y": y_dense[:3], "dx": dx, "dw": dw, "y_dense": y_dense},
    )


def stride_two() -> Example:
    """Stride 2 in 2-D: dense then subsample (T2); dx from the zero-upsampled dy (T3)."""
    x = integers(41, (1, 1, 5, 5))
    w = numpy.array([[1.0, -1.0], [2.0, 0.0]]).reshape(1, 1, 2, 2)
    dy = numpy.array([[1.0, 2.0], [-1.0, 1.0]]).reshape(1, 1, 2, 2)
    lengths = (5, 5)
    x_hat = numpy.fft.rfft2(x[0, 0], lengths)
    w_hat = numpy.fft.rfft2(w[0, 0], lengths)
    y_dense = numpy.fft.irfft2(x_hat * numpy.conj(w_hat), lengths)
    y = y_dense[0:3:2, 0:3:2]  # (T2): keep every stride-th position, P = 2
    dy_up = zero_upsample(dy[0, 0], 2)  # 3 x 3
    dx = numpy.fft.irfft2(numpy.fft.rfft2(dy_up, lengths) * w_hat, lengths)  # (T3)
    y_fft, cache = conv2d_forward(x, w, stride=2, algorithm="fft")
    y_direct, cache_direct = conv2d_forward(x, w, stride=2, algorithm=DIRECT)
    dx_fft, _, _ = conv_gradients(dy, cache)
    dx_direct, _, _ = conv_gradients(dy, cache_direct)
    require_equal("(T2) dense then subsample", y, y_direct[0, 0])
    require_equal("(T2) convprop's fft", y_fft, y_direct)
    require_equal("(T3) with dy_up", dx, dx_direct[0, 0])
    require_equal("(T3) convprop's fft", dx_fft, dx_direct)
    return Example(
        "Stride 2 in two dimensions: dense, then every second output",
        "(T2) (T3) §6, dy_up §1",
        [
            *block("x", x[0, 0]),
            *block("w", w[0, 0]),
            *block("y_dense", y_dense, "(every window, stride 1, from one product of spectra) ="),
            *block("y", y, "(y_dense at rows and columns 0 and 2, T2) ="),
            *block("dy_up", dy_up, "(dy with a zero between entries) ="),
            *block("dx", dx, "(irfft2 of DFT(dy_up)·ŵ, T3) ="),
            "convprop's 'fft' and 'direct' algorithms give the same y and dx: equal.",
            "Exact, but wasteful by about stride² (most dense outputs are thrown away).",
        ],
        {"x": x, "w": w, "dy": dy, "y": y, "y_dense": y_dense, "dy_up": dy_up, "dx": dx},
        {"stride": 2},
    )


def examples() -> list[Example]:
    """Every example of ``convprop explain fft``."""
    return [theorem(), one_dimension(), stride_two()]


def explain_fft() -> str:
    """The text of ``convprop explain fft``."""
    heading = (
        "convprop explain fft: the convolution theorem on small cases, computed with numpy.fft\n"
        "and checked against convprop's 'fft' and 'direct' conv2d."
    )
    return render(examples(), heading)
