"""Convolution by im2col + GEMM (Caffe's lowering), with the matrix-product derivative.

Notation  x (N,C,H,W)  w (K,C/G,R,S)  y (N,K,P,Q)  G groups;  CRS = C/G*R*S,  PQ = P*Q
Forward
  cols[n, g, (c,r,s), (p,q)] = x_pad[n, g*C/G + c, p*stride_h + r*dil_h,
                                     q*stride_w + s*dil_w]                        (I1)
  Y[n, g] = W[g] @ cols[n, g],  W = w viewed as (G, K/G, CRS)                     (I2)
Backward  (dY = dy viewed as (N, G, K/G, PQ))
  dW[g] = sum_n dY[n, g] @ cols[n, g]^T                                           (I3)
  dcols[n, g] = W[g]^T @ dY[n, g]                                                 (I4)
  dx = col2im(dcols): the adjoint of (I1), a scatter-add over the taps            (I5)
  stride 1: dx = (I1), (I2) applied to dy with rot180(w), channel roles swapped, and
            dy padded by dil*(R-1) - pad on each side (B3 as it stands)           (I6)

(I6) needs no scatter-add and its GEMM sums over K/G*R*S instead of K/G; the cost
model (``conv2d_select.im2col_data_by_convolution``) picks (I4)-(I5) or (I6) per layer.
The batch as columns, for the forward and the weight gradient where P*Q is small:
  colsW[g, (c,r,s), (n,p,q)] = cols[n, g, (c,r,s), (p,q)],  YW[g] = W[g] @ colsW[g],
  dW[g] = dYW[g] @ colsW[g]^T   (one product per group; the sum over n inside it)   (I7)

One batched GEMM covers every group and image (matmul broadcasts over n and g), or with
(I7) one GEMM per group over all images (``conv2d_select.im2col_batch_as_columns``).
(I3) by image adds each image's product into dW as it is made (NumPy's BLAS with beta = 1,
``convprop._native.products.add_products``) where the products are large, instead of a
stack of N products and a sum over it.

Memory: the columns take N·C·R·S·P·Q elements. Past ``conv2d_workspace.WORKSPACE_BYTES``
the batch is processed in chunks of images (and the columns are recomputed in backward
instead of kept); where one image's columns pass it, in blocks of filters and channels
(``conv2d_workspace``), so a huge layer never needs more than the budget for its
workspace. A 1×1 kernel
with stride 1 and no padding needs no columns at all: x itself, viewed as
(N, G, C/G, H·W), is the column matrix.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

from convprop import _native
from convprop._native import im2col as compiled_im2col
from convprop._native import products
from convprop._shapes import ConvGeometry
from convprop.backend import Array, get_xp
from convprop.functional import conv2d_ieee, conv2d_select, conv2d_workspace
from convprop.functional._conv_common import (
    crop_padding,
    group_view_w,
    group_view_x,
    pad_input,
    rotated_filters,
    tap_window,
    taps,
    transposed_geometry,
)

NAME = "im2col"


def decline(geom: ConvGeometry) -> str | None:
    """im2col handles every valid convolution."""
    return None


def im2col(x: Array, geom: ConvGeometry, wide: bool = False) -> Array:
    """(I1): x (N, C, H, W) -> cols (N, G, C/G*R*S, P*Q); with ``wide``, the same values with
    the batch as columns (I7): (G, C/G*R*S, N*P*Q).

    One strided-slice copy per tap (r, s) covers all of N, C, P, Q; on the CPU the
    compiled kernel makes the same copy in one pass, on all cores, in either order. Memory:
    N·C·R·S·P·Q elements.
    """
    G, PQ = geom.groups, geom.P * geom.Q
    rows = (geom.C // G) * geom.R * geom.S
    cols = _tap_copies(x, geom, wide)  # (N, C, R, S, P, Q) or (C, R, S, N, P, Q)
    if wide:
        return cols.reshape(G, rows, geom.N * PQ)  # (I7)
    return cols.reshape(geom.N, G, rows, PQ)  # (I1)


@_native.accelerated(compiled_im2col.im2col)
def _tap_copies(x: Array, geom: ConvGeometry, wide: bool = False) -> Array:
    """(I1) as one strided copy per tap: cols (N, C, R, S, P, Q), or with ``wide`` (I7)
    (C, R, S, N, P, Q)."""
    xp = get_xp(x)
    x_pad = pad_input(xp, x, geom)
    cols = xp.empty((geom.N, geom.C, geom.R, geom.S, geom.P, geom.Q), dtype=x.dtype)
    for r, s in taps(geom):
        window_rows, columns = tap_window(geom, r, s)
        cols[:, :, r, s] = x_pad[:, :, window_rows, columns]  # (I1)
    if wide:
        cols = xp.ascontiguousarray(cols.transpose(1, 2, 3, 0, 4, 5))  # (I7)
    return cols


@_native.accelerated(compiled_im2col.col2im)
def col2im(dcols: Array, geom: ConvGeometry, out: Array | None = None) -> Array:
    """(I5), the adjoint of :func:`im2col`: dcols (N, G, C/G*R*S, P*Q) -> dx (N, C, H, W),
    written into ``out`` (N, C, H, W) where given; compiled, one pass per plane, where the
    kernels serve dcols (and out).

    col2im must scatter-add: windows overlap whenever stride < dilated kernel size, so
    one x_pad element receives contributions from several (tap, output) pairs.
    """
    if out is not None:
        out[...] = col2im(dcols, geom)
        return out
    xp = get_xp(dcols)
    Hp, Wp = geom.padded_hw
    dcols = dcols.reshape(geom.N, geom.C, geom.R, geom.S, geom.P, geom.Q)
    dx_pad = xp.zeros((geom.N, geom.C, Hp, Wp), dtype=dcols.dtype)
    for r, s in taps(geom):
        rows, columns = tap_window(geom, r, s)
        dx_pad[:, :, rows, columns] += dcols[:, :, r, s]  # (I5) scatter-add
    return crop_padding(dx_pad, geom)


def _weight_matrix(w: Array, geom: ConvGeometry) -> Array:
    """w (K, C/G, R, S) -> W (G, K/G, C/G*R*S)."""
    return group_view_w(w, geom).reshape(geom.groups, geom.K // geom.groups, -1)


def _is_pointwise(geom: ConvGeometry) -> bool:
    """1×1 kernel, stride 1, no padding: the columns are x itself."""
    return conv2d_select.is_pointwise(geom)


def _columns(x: Array, geom: ConvGeometry, wide: bool = False) -> Array:
    """(I1), or (I7) with ``wide``, for any geometry: a zero-copy view for pointwise
    convolutions (never wide)."""
    if _is_pointwise(geom):
        return x.reshape(geom.N, geom.groups, geom.C // geom.groups, geom.H * geom.W)
    return im2col(x, geom, wide)


def batch_as_columns(geom: ConvGeometry, a: Array) -> bool:
    """Whether this layer's products take the batch as columns (I7), for arrays like ``a``;
    never for a pointwise layer, whose columns are x itself."""
    if _is_pointwise(geom):
        return False
    return conv2d_select.im2col_batch_as_columns(geom, _native.runs_compiled(a))


def _output_matrix(d: Array, geom: ConvGeometry, wide: bool) -> Array:
    """An (N, K, P, Q) array as the products see it: (N, G, K/G, P*Q), or with ``wide``
    (G, K/G, N*P*Q), the images side by side (one copy)."""
    xp = get_xp(d)
    Kg, PQ = geom.K // geom.groups, geom.P * geom.Q
    if wide:
        return xp.ascontiguousarray(d.transpose(1, 0, 2, 3)).reshape(geom.groups, Kg, -1)
    return group_view_x(d, geom).reshape(geom.N, geom.groups, Kg, PQ)


def _images(M: Array, images: slice, geom: ConvGeometry, wide: bool) -> Array:
    """The block ``images`` of an :func:`_output_matrix` (a view: columns where ``wide``)."""
    if not wide:
        return M[images]
    PQ = geom.P * geom.Q
    return M[:, :, images.start * PQ : images.stop * PQ]


def _product(W: Array, cols: Array, geom: ConvGeometry, wide: bool) -> Array:
    """(I2), or (I7): y (N, K, P, Q) of one block of images; with ``wide`` a transposed view
    of the one product (the caller copies it)."""
    Y = W @ cols  # (I2) -> (N, G, K/G, PQ), or (I7) -> (G, K/G, N*PQ)
    if not wide:
        return Y.reshape(geom.y_shape)
    return Y.reshape(geom.K, geom.N, geom.P, geom.Q).transpose(1, 0, 2, 3)  # (I7) by image


def chunk_size(geom: ConvGeometry, itemsize: int, budget: int | None = None) -> int:
    """How many images fit in one column buffer of at most ``budget`` bytes, by default the
    layer's (``conv2d_workspace.budget``); at least 1."""
    if _is_pointwise(geom):
        return geom.N
    if budget is None:
        budget = conv2d_workspace.budget(geom, itemsize)
    per_image = geom.C * geom.R * geom.S * geom.P * geom.Q * itemsize
    return max(1, min(geom.N, budget // max(per_image, 1)))


def _blocks(geom: ConvGeometry, pass_name: str, a: Array) -> Any:
    """The blocks of filters and channels (conv2d_workspace) of a pass whose columns for one
    image pass the budget; None where whole images fit (chunked by :func:`_chunks`)."""
    itemsize, compiled = a.dtype.itemsize, _native.runs_compiled(a)
    one = replace(geom, N=1)
    limit = conv2d_workspace.budget(geom, itemsize)
    if conv2d_select.workspace_bytes(NAME, one, pass_name, itemsize, compiled) <= limit:
        return None
    return conv2d_select.blocks(NAME, geom, pass_name, itemsize, compiled)


def _chunks(
    geom: ConvGeometry, itemsize: int, parts: int = 1, offset: int = 0, budget: int | None = None
) -> tuple[tuple[slice, ConvGeometry], ...]:
    """Slices of the batch (shifted by ``offset``) and their geometries: at most ``budget``
    bytes of columns each (by default the layer's, ``conv2d_workspace.budget``), and at
    least ``parts`` of them when N allows."""
    if budget is None:
        budget = conv2d_workspace.budget(geom, itemsize)
    return _chunks_within(geom, itemsize, parts, offset, budget)


@functools.lru_cache(maxsize=256)  # asked several times per step for the same layers
def _chunks_within(
    geom: ConvGeometry, itemsize: int, parts: int, offset: int, budget: int
) -> tuple[tuple[slice, ConvGeometry], ...]:
    step = min(chunk_size(geom, itemsize, budget), max(1, -(-geom.N // parts)))
    return tuple(
        (
            slice(offset + start, offset + min(start + step, geom.N)),
            replace(geom, N=min(step, geom.N - start)),
        )
        for start in range(0, geom.N, step)
    )


def forward(x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]:
    """(I1), (I2) or (I7): y (N, K, P, Q) without bias, and the columns when they fit the
    budget (in the order the products used: 3-D where the batch is columns)."""
    plan = _blocks(geom, "forward", x)
    if plan is not None:  # one image's columns pass the budget: blocks of filters, channels
        return conv2d_workspace.forward_by_blocks(_forward_images, x, w, geom, plan), None
    return _forward_images(x, w, geom)


def _forward_images(x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]:
    """(I1), (I2) or (I7) over the batch, in chunks of images past the budget."""
    xp = get_xp(x, w)
    W = _weight_matrix(w, geom)  # (G, K/G, CRS)
    wide = batch_as_columns(geom, x)
    chunks = _chunks(geom, x.dtype.itemsize)
    if len(chunks) == 1:
        cols = _columns(x, geom, wide)  # (N, G, CRS, PQ) or (G, CRS, N*PQ)
        return xp.ascontiguousarray(_product(W, cols, geom, wide)), cols
    y = xp.empty(geom.y_shape, dtype=x.dtype)
    for images, part in chunks:
        y[images] = _product(W, _columns(x[images], part, wide), part, wide)  # one chunk
    return y, None


def _add_weight_gradient(dW: Array, dY: Array, cols: Array, wide: bool) -> None:
    """dW (G, K/G, CRS) += (I3) summed over the images of a chunk: from (n, G, K/G, PQ) and
    (n, G, CRS, PQ), or in one product per group from (G, K/G, n*PQ), (G, CRS, n*PQ) (I7).
    By image, NumPy's BLAS adds each image's product into dW where it can (no stack of n
    products to sum)."""
    if wide:
        dW += dY @ cols.transpose(0, 2, 1)  # (I7): the sum over n is inside the product
        return
    if products.add_products(dW[0], dY[:, 0], cols[:, 0]):  # (I3), image by image
        for g in range(1, dW.shape[0]):  # the same layout: the same answer
            if not products.add_products(dW[g], dY[:, g], cols[:, g]):
                dW[g] += (dY[:, g] @ cols[:, g].transpose(0, 2, 1)).sum(axis=0)
        return
    dW += (dY @ cols.transpose(0, 1, 3, 2)).sum(axis=0)  # every group in one stack


def _gradients(
    dy: Array, x: Array, w: Array | None, geom: ConvGeometry, saved: Any
) -> tuple[Array | None, Array]:
    """(I3)-(I5) chunk by chunk: dx (or None when ``w`` is None) and dw (K, C/G, R, S)."""
    xp = get_xp(dy, x, w)
    if w is not None:
        dx_by_convolution = _data_by_convolution(dy, w, geom)  # (I6) where it is cheaper
        if dx_by_convolution is not None:
            return dx_by_convolution, _gradients(dy, x, None, geom, saved)[1]
    budget = conv2d_workspace.budget(geom, dy.dtype.itemsize)  # the layer's, for every chunk
    chunks = _chunks(geom, dy.dtype.itemsize, budget=budget)
    if len(chunks) > 1:  # the budget shrank since the forward kept the whole batch's columns
        saved = None
    # the forward's columns say in which order they were laid out; fresh ones follow the rule.
    # The input gradient stays by image: (I7)'s wider product there was measured to gain
    # less than its col2im, reading 9 to 25 runs per plane far apart, lost (res3x3s2, lenet2)
    wide = saved.ndim == 3 if saved is not None else batch_as_columns(geom, dy)
    dY = _output_matrix(dy, geom, wide)
    dY_images = dY if not wide else _output_matrix(dy, geom, False)  # for (I4)
    dW = xp.zeros(
        (geom.groups, geom.K // geom.groups, geom.w_shape[1] * geom.R * geom.S), dtype=dy.dtype
    )
    W_T = None if w is None else _weight_matrix(w, geom).transpose(0, 2, 1)  # (G, CRS, K/G)
    dx = None if w is None else xp.empty(geom.x_shape, dtype=dy.dtype)
    # With the forward's columns kept, a whole-batch dcols would double the workspace: the
    # input gradient then goes in quarters of the batch, so dcols adds a quarter at most.
    dx_parts = 4 if saved is not None else 1
    for images, part in chunks:
        cols = saved if saved is not None else _columns(x[images], part, wide)
        _add_weight_gradient(dW, _images(dY, images, geom, wide), cols, wide)  # (I3)
        if dx is None:
            continue
        for sub, sub_geom in _chunks(part, dy.dtype.itemsize, dx_parts, images.start, budget):
            dcols = W_T @ dY_images[sub]  # (I4) -> (n, G, CRS, PQ)
            _col2im_any(dcols, sub_geom, out=dx[sub])  # (I5), into dx's own images
    return dx, dW.reshape(geom.w_shape)


def backward(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(I3)-(I6): dx (N, C, H, W) or None, and dw (K, C/G, R, S)."""
    plan = _blocks(geom, "backward" if need_dx else "weight", dy)
    if plan is not None:
        return conv2d_workspace.backward_by_blocks(_backward_images, dy, x, w, geom, plan,
                                                   need_dx)  # fmt: skip
    return _backward_images(dy, x, w, geom, saved, need_dx)


def _backward_images(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(I3)-(I6) over the batch, in chunks of images past the budget."""
    return _gradients(dy, x, w if need_dx else None, geom, saved)


def _col2im_any(dcols: Array, geom: ConvGeometry, out: Array | None = None) -> Array:
    """(I5), or a reshape for pointwise convolutions (whose im2col is a view); written into
    ``out`` (N, C, H, W) where given."""
    if _is_pointwise(geom):
        dx = dcols.reshape(geom.N, geom.C, geom.H, geom.W)
        if out is None:
            return dx
        out[...] = dx
        return out
    return col2im(dcols, geom, out)


def backward_weight(dy: Array, x: Array, geom: ConvGeometry, saved: Any) -> Array:
    """(I3): dw (K, C/G, R, S) = sum over n of dY · colsᵀ."""
    plan = _blocks(geom, "weight", dy)
    if plan is not None:
        return conv2d_workspace.backward_weight_by_blocks(_weight_images, dy, x, geom, plan)
    return _weight_images(dy, x, geom, saved)


def _weight_images(dy: Array, x: Array, geom: ConvGeometry, saved: Any) -> Array:
    """(I3) over the batch, in chunks of images past the budget."""
    return _gradients(dy, x, None, geom, saved)[1]


def _data_by_convolution(dy: Array, w: Array, geom: ConvGeometry) -> Array | None:
    """(I6) where the cost model prefers it and w is finite: dx (N, C, H, W); None to take
    (I4)-(I5), which sums over the outputs only and so keeps IEEE semantics (conv2d_ieee)."""
    transposed = transposed_geometry(geom)
    if transposed is None:
        return None
    compiled = _native.runs_compiled(dy)  # whether the compiled im2col copies dy's columns
    if not conv2d_select.im2col_data_by_convolution(geom, dy.dtype.itemsize, compiled):
        return None
    if not conv2d_ieee.all_finite(w):  # (I6) pads dy: 0·±∞ would be NaN where (B3) has ±∞
        return None
    return forward(dy, rotated_filters(w, geom), transposed)[0]  # (I6) = (I1), (I2) on dy


def backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(I4), (I5): dx (N, C, H, W) = col2im(Wᵀ · dY), chunk by chunk; or (I6) for stride 1."""
    plan = _blocks(geom, "data", dy)
    if plan is not None:
        return conv2d_workspace.backward_data_by_blocks(_data_images, dy, w, geom, plan)
    return _data_images(dy, w, geom)


def _data_images(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(I4), (I5) or (I6) over the batch, in chunks of images past the budget."""
    dx = _data_by_convolution(dy, w, geom)
    if dx is not None:
        return dx
    xp = get_xp(dy, w)
    W_T = _weight_matrix(w, geom).transpose(0, 2, 1)
    dY = _output_matrix(dy, geom, False)
    chunks = _chunks(geom, dy.dtype.itemsize)
    if len(chunks) == 1:  # the whole batch at once: col2im's array is dx itself
        return xp.ascontiguousarray(_col2im_any(W_T @ dY, geom))  # (I4), (I5)
    dx = xp.empty(geom.x_shape, dtype=dy.dtype)
    for images, part in chunks:
        _col2im_any(W_T @ dY[images], part, out=dx[images])  # (I4), (I5)
    return dx
