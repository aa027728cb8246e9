"""The workspace budget of the 2-D convolution algorithms, and the blocks that keep a layer
within it.

im2col's columns, Winograd's transformed tiles and the FFT's spectra grow with the layer
(N·C·R·S·P·Q, (m+2)²·T·(C + K) and about Lh·Lw/2·(N·C + 2·K·C/G + N·K) values). Where the
cost model's estimate of a pass's workspace (``conv2d_cost_model.workspace_bytes``) passes
the layer's :func:`budget`, the algorithm runs the layer as blocks, each one an ordinary
convolution within the budget, run by the algorithm's whole-layer code, and keeps no
workspace from the forward for the backward (which forms it again, block by block):

1. chunks of images, as many images per chunk as fit, wherever one image fits;
2. else one group at a time, in blocks of filters and of channels (the one whose halving
   saves more is halved until one image fits), as many images per block as fit.

The images vary fastest, so that an algorithm can make what it reads of a block's filters
once for all its image chunks (``prepare``: the FFT's kernel spectrum) and finish the sum of
their weight-gradient parts once (``finish``: the FFT's inverse of the taps).

Every block is exact, by the linearity of the sums:
  y[I, Kb] = the sum over channel blocks Cb of (F1) over x[I, Cb] and w[Kb, Cb]
  dx[I, Cb] = the sum over filter blocks Kb of (B3) over dy[I, Kb] and w[Kb, Cb]
  dw[Kb, Cb] = the sum over image chunks I of (B2) over dy[I, Kb] and x[I, Cb]
and group g is the convolution of x[:, g·C/G : (g+1)·C/G] with w[g·K/G : (g+1)·K/G] alone.
A layer within the budget runs whole, on the algorithm's own code path, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from convprop._shapes import ConvGeometry
from convprop.backend import Array, get_xp

WORKSPACE_BYTES = 256 * 2**20
"""The workspace budget of one pass of one layer (bytes), for every algorithm that cuts its
layer into blocks (im2col, Winograd, FFT): the most any pass takes, whatever the layer (see
:func:`budget` for the layers whose own arrays are smaller). Read at every call: set it on
this module to change it (a smaller budget costs time in more, smaller products and
transforms)."""

WORKSPACE_SHARE = 0.5
"""A layer's budget is at most this share of the bytes of its own x and y, so that a pass
needs at most about 1.5 times the memory of the arrays it reads and writes (PyTorch's CPU
convolution needs about x and y again for its own layouts)..."""

WORKSPACE_MIN_BYTES = 96 * 2**20
"""... but never less than this: a small layer runs whole, where blocks would cost time and
save little memory (the largest workspace of the conv suite and the shipped models, the
Winograd backward of ResNet-20's first stage at batch 128, is 96 MiB; cut into chunks of
images it took 1.3 times as long)."""

Workspace = Callable[[ConvGeometry], float]
"""A pass's workspace estimate (bytes) for a layer geometry."""


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a layer: an ordinary convolution within the budget.

    Fields
    ------
    images : slice
        Of the batch axis of x, dy and y.
    channels : slice
        Of x's channel axis C (absolute, inside one group or all of them).
    filters : slice
        Of w's and y's filter axis K (absolute).
    taps : slice
        Of w's channel axis C/G: the block's channels within their group.
    geom : ConvGeometry
        The block's own convolution (N, C, K and groups of the block).
    whole_channels, whole_filters : bool
        Whether the block reads all channels of its filters' group (y needs no sum over
        blocks) and all filters of its channels' group (dx needs none).
    """

    images: slice
    channels: slice
    filters: slice
    taps: slice
    geom: ConvGeometry
    whole_channels: bool
    whole_filters: bool


def budget(geom: ConvGeometry | None = None, itemsize: int = 4) -> int:
    """The workspace budget (bytes) of a pass over the layer ``geom`` with elements of
    ``itemsize`` bytes: WORKSPACE_SHARE of its x and y, at least WORKSPACE_MIN_BYTES and at
    most WORKSPACE_BYTES; WORKSPACE_BYTES without a layer. Read at every call.

    Examples
    --------
    >>> from convprop._shapes import conv_geometry
    >>> g = conv_geometry("conv2d", (16, 64, 128, 128), (64, 64, 9, 9), None,
    ...                   stride=1, padding=4, dilation=1, groups=1)
    >>> budget(g) // 2**20, budget() // 2**20  # x and y: 64 MiB each
    (96, 256)
    """
    if geom is None:
        return int(WORKSPACE_BYTES)
    layer = (geom.N * geom.C * geom.H * geom.W + geom.N * geom.K * geom.P * geom.Q) * itemsize
    share = max(float(WORKSPACE_MIN_BYTES), WORKSPACE_SHARE * layer)
    return int(min(float(WORKSPACE_BYTES), share))


def _most_images(fits: Callable[[int], bool], most: int) -> int:
    """The largest n in [1, most] with fits(n) (fits is monotone: true up to some n), or 1."""
    low, high = 1, most
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


@dataclass(frozen=True, slots=True)
class Cut:
    """How a layer is cut into blocks: ``images`` per chunk, and with ``by_group`` one group
    at a time in blocks of ``filters`` filters and ``channels`` channels (of the group's)."""

    images: int
    filters: int
    channels: int
    by_group: bool


def cut(geom: ConvGeometry, workspace: Workspace, limit: float) -> Cut | None:
    """How to cut a layer whose pass needs ``workspace(geom)`` bytes into blocks within
    ``limit`` (the layer's :func:`budget`): None where the whole layer fits (it runs whole),
    or where no smaller block exists. Where filters and channels must be cut, the one whose
    halving saves more workspace is halved (im2col's columns do not depend on the filters).
    """
    if workspace(geom) <= limit:
        return None
    N, G = geom.N, geom.groups
    if workspace(replace(geom, N=1)) <= limit:  # 1. chunks of whole images
        n = _most_images(lambda n: workspace(replace(geom, N=n)) <= limit, N)
        return Cut(n, geom.K, geom.C, False)
    C_g, K_g = geom.C // G, geom.K // G  # 2. one group at a time, blocks of filters, channels
    one = replace(geom, N=1, C=C_g, K=K_g, groups=1)
    K_b, C_b = K_g, C_g
    while workspace(replace(one, K=K_b, C=C_b)) > limit and (K_b > 1 or C_b > 1):
        fewer_filters = workspace(replace(one, K=-(-K_b // 2), C=C_b)) if K_b > 1 else None
        fewer_channels = workspace(replace(one, K=K_b, C=-(-C_b // 2))) if C_b > 1 else None
        if fewer_channels is None or (fewer_filters is not None
                                      and fewer_filters <= fewer_channels):  # fmt: skip
            K_b = -(-K_b // 2)
        else:
            C_b = -(-C_b // 2)
    n = _most_images(lambda n: workspace(replace(one, N=n, K=K_b, C=C_b)) <= limit, N)
    count = -(-N // n) * G * -(-K_g // K_b) * -(-C_g // C_b)
    return Cut(n, K_b, C_b, True) if count > 1 else None


def _pieces(total: int, size: int) -> list[tuple[int, int]]:
    """(size, how many) of the pieces of ``size`` that cover ``total``: whole, then the rest."""
    pieces = [(size, total // size)]
    if total % size:
        pieces.append((total % size, 1))
    return pieces


def block_shapes(geom: ConvGeometry, plan: Cut) -> list[tuple[ConvGeometry, int, bool, bool]]:
    """The distinct blocks of a cut, without listing them: (geometry, how many, whole
    channels, whole filters), at most eight (the cost model sums over these)."""
    if not plan.by_group:
        return [
            (replace(geom, N=n), count, True, True) for n, count in _pieces(geom.N, plan.images)
        ]
    C_g, K_g = geom.C // geom.groups, geom.K // geom.groups
    return [
        (replace(geom, N=n, K=k, C=c, groups=1), images * geom.groups * filters * channels,
         plan.channels == C_g, plan.filters == K_g)
        for n, images in _pieces(geom.N, plan.images)
        for k, filters in _pieces(K_g, plan.filters)
        for c, channels in _pieces(C_g, plan.channels)
    ]  # fmt: skip


def blocks(geom: ConvGeometry, workspace: Workspace, limit: float) -> tuple[Block, ...] | None:
    """The blocks of a layer whose pass needs ``workspace(geom)`` bytes, each within ``limit``
    (see :func:`cut`); None where the layer runs whole.

    Examples
    --------
    >>> from convprop._shapes import conv_geometry
    >>> g = conv_geometry("conv2d", (10, 4, 8, 8), (6, 4, 3, 3), None,
    ...                   stride=1, padding=1, dilation=1, groups=1)
    >>> per_image = lambda part: part.N * 1000.0
    >>> blocks(g, per_image, limit=10000) is None
    True
    >>> [(b.images.start, b.geom.N) for b in blocks(g, per_image, limit=4000)]
    [(0, 4), (4, 4), (8, 2)]
    >>> tiles = lambda part: part.N * (part.C + part.K) * 1000.0
    >>> plan = blocks(g, tiles, limit=6000)  # one image needs 10000: halves of K and C
    >>> len(plan), plan[10].images, plan[10].filters, plan[10].channels  # images fastest
    (40, slice(0, 1, None), slice(0, 3, None), slice(2, 4, None))
    """
    plan = cut(geom, workspace, limit)
    if plan is None:
        return None
    N, C, K, G = geom.N, geom.C, geom.K, geom.groups
    n = plan.images
    if not plan.by_group:
        return tuple(
            Block(slice(i, min(i + n, N)), slice(0, C), slice(0, K), slice(0, C // G),
                  replace(geom, N=min(n, N - i)), True, True)
            for i in range(0, N, n)
        )  # fmt: skip
    C_g, K_g = C // G, K // G
    K_b, C_b = plan.filters, plan.channels
    one = replace(geom, C=C_g, K=K_g, groups=1)
    return tuple(
        Block(slice(i, min(i + n, N)), slice(g * C_g + c, g * C_g + min(c + C_b, C_g)),
              slice(g * K_g + k, g * K_g + min(k + K_b, K_g)), slice(c, min(c + C_b, C_g)),
              replace(one, N=min(n, N - i), K=min(K_b, K_g - k), C=min(C_b, C_g - c)),
              C_b == C_g, K_b == K_g)
        for g in range(G) for k in range(0, K_g, K_b) for c in range(0, C_g, C_b)
        for i in range(0, N, n)
    )  # fmt: skip


def peak(geom: ConvGeometry, workspace: Workspace, limit: float) -> float:
    """The workspace of the largest block within ``limit`` (the whole layer's where it runs
    whole)."""
    plan = cut(geom, workspace, limit)
    if plan is None:
        return workspace(geom)
    return max(workspace(part) for part, _, _, _ in block_shapes(geom, plan))


Forward = Callable[[Array, Any, ConvGeometry], tuple[Array, Any]]
Backward = Callable[[Array, Array, Any, ConvGeometry, Any, bool], tuple[Array | None, Any]]
Prepare = Callable[[Array, ConvGeometry], Any]
"""A block's filters w (K_b, C_b, R, S) -> what the algorithm reads of them (the FFT: their
spectrum), made once for all the image chunks of the block's filters and channels."""
Finish = Callable[[Any, ConvGeometry], Array]
"""The sum over the image chunks of a block's weight-gradient parts -> dw (K_b, C_b, R, S)
(the FFT: the inverse (T6) of the summed spectrum, once)."""


def _kernel_runs(plan: tuple[Block, ...]) -> list[list[Block]]:
    """The plan's runs of blocks that share filters and channels (the images vary fastest)."""
    runs: list[list[Block]] = []
    for block in plan:
        if runs and (runs[-1][0].filters, runs[-1][0].taps) == (block.filters, block.taps):
            runs[-1].append(block)
        else:
            runs.append([block])
    return runs


def _kernel(w: Array, block: Block, prepare: Prepare | None) -> Any:
    w_block = w[block.filters, block.taps]
    return w_block if prepare is None else prepare(w_block, block.geom)


def forward_by_blocks(
    forward: Forward, x: Array, w: Array, geom: ConvGeometry, plan: tuple[Block, ...],
    prepare: Prepare | None = None,
) -> Array:  # fmt: skip
    """(F1) block by block: y (N, K, P, Q) without bias; ``forward`` is the algorithm's,
    given each block's filters, or what ``prepare`` made of them."""
    xp = get_xp(x, w)
    whole = all(block.whole_channels for block in plan)
    y = (xp.empty if whole else xp.zeros)(geom.y_shape, dtype=x.dtype)
    for run in _kernel_runs(plan):
        kernel = _kernel(w, run[0], prepare)
        for block in run:
            # [0]: the block's saved work goes at once, not held while the next one is made
            part = forward(x[block.images, block.channels], kernel, block.geom)[0]
            if block.whole_channels:
                y[block.images, block.filters] = part  # (F1) of these images and filters
            else:
                y[block.images, block.filters] += part  # (F1): its sum over c, in parts
            del part
        del kernel
    return y


def backward_by_blocks(
    backward: Backward, dy: Array, x: Array, w: Array, geom: ConvGeometry,
    plan: tuple[Block, ...], need_dx: bool, prepare: Prepare | None = None,
    finish: Finish | None = None,
) -> tuple[Array | None, Array]:  # fmt: skip
    """(B3), (B2) block by block with ``backward``, the algorithm's (both gradients of a block
    from one pass over its dy, given its filters or what ``prepare`` made of them; its
    weight-gradient parts summed over the images, then made dw by ``finish``): dx (N, C, H, W)
    or None, and dw (K, C/G, R, S)."""
    xp = get_xp(dy, x, w)
    dw = xp.empty(geom.w_shape, dtype=dy.dtype)
    dx = None
    if need_dx:
        whole = all(block.whole_filters for block in plan)
        dx = (xp.empty if whole else xp.zeros)(geom.x_shape, dtype=dy.dtype)
    for run in _kernel_runs(plan):
        kernel = _kernel(w, run[0], prepare)
        total = None
        for block in run:
            dx_part, dw_part = backward(
                dy[block.images, block.filters], x[block.images, block.channels], kernel,
                block.geom, None, need_dx,
            )  # fmt: skip
            total = _sum(total, dw_part)  # (B2): its sum over n, in parts
            if dx is not None:
                _place(dx, (block.images, block.channels), dx_part, block.whole_filters)  # (B3)
            del dx_part, dw_part  # not held while the next block's are made
        del kernel
        dw[run[0].filters, run[0].taps] = total if finish is None else finish(total, run[0].geom)
    return dx, dw


def backward_data_by_blocks(
    backward_data: Callable[[Array, Any, ConvGeometry], Array], dy: Array, w: Array,
    geom: ConvGeometry, plan: tuple[Block, ...], prepare: Prepare | None = None,
) -> Array:  # fmt: skip
    """(B3) block by block with ``backward_data``, the algorithm's (given each block's filters
    or what ``prepare`` made of them): dx (N, C, H, W)."""
    xp = get_xp(dy, w)
    whole = all(block.whole_filters for block in plan)
    dx = (xp.empty if whole else xp.zeros)(geom.x_shape, dtype=dy.dtype)
    for run in _kernel_runs(plan):
        kernel = _kernel(w, run[0], prepare)
        for block in run:
            part = backward_data(dy[block.images, block.filters], kernel, block.geom)
            _place(dx, (block.images, block.channels), part, block.whole_filters)  # (B3)
            del part
        del kernel
    return dx


def backward_weight_by_blocks(
    backward_weight: Callable[[Array, Array, ConvGeometry, Any], Any], dy: Array, x: Array,
    geom: ConvGeometry, plan: tuple[Block, ...], finish: Finish | None = None,
) -> Array:  # fmt: skip
    """(B2) block by block with ``backward_weight``, the algorithm's (its parts summed over
    the images, then made dw by ``finish``): dw (K, C/G, R, S)."""
    xp = get_xp(dy, x)
    dw = xp.empty(geom.w_shape, dtype=dy.dtype)
    for run in _kernel_runs(plan):
        total = None
        for block in run:
            part = backward_weight(
                dy[block.images, block.filters], x[block.images, block.channels], block.geom, None
            )  # fmt: skip
            total = _sum(total, part)  # (B2): its sum over n, in parts
            del part
        dw[run[0].filters, run[0].taps] = total if finish is None else finish(total, run[0].geom)
    return dw


def _sum(total: Any, part: Any) -> Any:
    """total + part, into total (a fresh array of the algorithm's) from the second part on."""
    if total is None:
        return part
    total += part
    return total


def _place(dx: Array, where: tuple[slice, slice], part: Array, whole: bool) -> None:
    """dx[where] = part, or += where other filter blocks add to the same channels (B3)."""
    if whole:
        dx[where] = part
    else:
        dx[where] += part
