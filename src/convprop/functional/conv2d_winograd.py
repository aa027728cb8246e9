"""Convolution by Winograd's minimal filtering F(2x2, 3x3), backward as its exact adjoint.

Each 2x2 output tile is computed from a 4x4 input tile d (tiles overlap by 2) and the
3x3 kernel g with 16 multiplications instead of 36 (Lavin & Gray, 2016):

  U = G g G^T                      (the kernel transform, 4x4 per (k, c))          (WG1)
  V = B^T d B                      (the input transform, 4x4 per (n, c, tile))     (WG2)
  M[k] = sum_c U[k,c] (.) V[c]     (16 independent GEMMs over the channels)        (WG3)
  y_tile = A^T M A                 (the output transform, 2x2)                      (WG4)

Because y is bilinear in (d, g), the gradients are the transposed transforms, tile by tile:

  Z = A dy_tile A^T                                                                 (WG5)
  dd = B (sum_k U[k,c] (.) Z[k]) B^T, scatter-added into the overlapping tiles      (WG6)
  dU[k,c] = sum_{n,tiles} Z[k] (.) V[c];  dg = G^T dU G                              (WG7)

A dilated kernel (dilation d_h x d_w) reads only every d-th row and column: output
(p'·d_h + alpha, q'·d_w + beta) sums x_pad[(p'+r)·d_h + alpha, (q'+s)·d_w + beta], a dense
3x3 convolution of the phase x_pad[alpha::d_h, beta::d_w]. The d_h·d_w phases go through
(WG1)-(WG7) as one batch and their outputs are interleaved back:                   (WG8)

Only 3x3 kernels and stride 1; other cases are declined. Output tiles past
P x Q are computed on zero-extended input and dropped (dy is zero-extended in backward).

F(4x4, 3x3) (``conv2d_winograd4``, the algorithm "winograd4") runs the same steps with 6x6
input tiles (overlapping by 2), 4x4 output tiles and 36 positions, its matrices B^T, G, A^T
of (WG9): 36 multiplications per 16 outputs instead of 16 per 4, at the price of rounding
errors in float32 several times larger (WG9). Everything below takes the tiling as ``t``.

On the CPU the four tile transforms (WG2, WG4, WG5, WG6) run as compiled kernels
(convprop._native.winograd) in a layout X[xi, channel, n·T + t] (xi = a·i + j one of the a²
tile positions, a = m + 2, T tiles per image), so that (WG3), (WG6) and (WG7) are a² GEMMs
over the whole batch at once: each dense pass below is the einsum code (the reference, the
path of CuPy arrays and of an install without the kernels) with its batched twin.

Memory: V and M (forward), Z, V and M̄ (backward) take (m+2)² values per tile and channel,
(m+2)²/m² times the planes they transform. Past ``conv2d_workspace.WORKSPACE_BYTES`` (the
estimate of ``conv2d_cost_model.workspace_bytes``) a pass runs in chunks of images, or one
image at a time in blocks of filters and channels, and the forward keeps no V for the
backward, which transforms x again block by block (conv2d_workspace). A layer within the
budget runs whole, as below.

Non-finite values: a NaN or ±∞ in x, w or dy enters the transforms of its whole tile (and
∞ - ∞ there is NaN), so the outputs of that tile become NaN where the sums (F1)-(B3) and
PyTorch keep ±∞ or finite values. ``auto`` checks for them and takes an algorithm that
keeps IEEE semantics instead (see conv2d_ieee); named, "winograd" and "winograd4" do not.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from convprop import _native
from convprop._native import winograd
from convprop._shapes import ConvGeometry
from convprop.backend import Array, get_xp
from convprop.functional import conv2d_cost_model, conv2d_workspace
from convprop.functional._conv_common import crop_padding, pad_input

NAME = "winograd"


@dataclass(frozen=True)
class Tiling:
    """F(m x m, 3x3): m output cells per tile side from (m + 2)-cell input tiles that start
    every m cells; the transform matrices as exact Python numbers (made into arrays of the
    input's module and dtype on use)."""

    m: int
    B_T: tuple[tuple[float, ...], ...]  # (a, a), a = m + 2
    G: tuple[tuple[float, ...], ...]  # (a, 3)
    A_T: tuple[tuple[float, ...], ...]  # (m, a)

    @property
    def a(self) -> int:
        """The input tile's side, m + 2."""
        return self.m + 2

    @property
    def positions(self) -> int:
        """Transformed values per tile, (m + 2)²: the number of GEMMs of (WG3)."""
        return self.a * self.a


F2 = Tiling(
    m=2,
    B_T=((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
    G=((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1)),
    A_T=((1, 1, 1, 0), (0, 1, -1, -1)),
)
"""F(2x2, 3x3), interpolation points 0, 1, -1 and infinity."""

F4 = Tiling(
    m=4,
    B_T=(
        (2, -3, -4, 3, 2, 0),
        (0, -2, 1, 5, 2, 0),
        (0, 2, -5, 1, 2, 0),
        (0, -2, -1, 2, 1, 0),
        (0, 1, -2, -1, 2, 0),
        (0, 2, -3, -4, 3, 2),
    ),
    G=(
        (1 / 2, 0, 0),
        (1 / 6, 1 / 6, 1 / 6),
        (-1 / 6, 1 / 6, -1 / 6),
        (-16 / 15, -8 / 15, -4 / 15),
        (1 / 30, -1 / 15, 2 / 15),
        (0, 0, 1 / 2),
    ),
    A_T=(
        (1, 1, 1, 1, 1, 0),
        (0, 1, -1, 1 / 2, -2, 0),
        (0, 1, 1, 1 / 4, 4, 0),
        (0, 1, -1, 1 / 8, -8, 1),
    ),
)
"""F(4x4, 3x3) (WG9), interpolation points 0, 1, -1, 1/2, -2 and infinity: in float32 its
error is about half that of the points 0, 1, -1, 2, -2 (1.2e-6 to 4.0e-6 of the largest
output against 4e-6 to 1e-5, 3 to 512 channels)."""

# F(2x2, 3x3)'s matrices under the names of docs/derivations.md, section 7
_B_T, _G, _A_T = F2.B_T, F2.G, F2.A_T


def decline_tiled(geom: ConvGeometry, t: Tiling) -> str | None:
    """F(m x m, 3x3) needs a 3x3 kernel and stride 1 (any dilation: WG8)."""
    name = f"F({t.m}x{t.m}, 3x3)"
    if (geom.R, geom.S) != (3, 3):
        return f"{name} needs a 3x3 kernel, got R x S = {geom.R} x {geom.S}"
    if (geom.stride_h, geom.stride_w) != (1, 1):
        return f"{name} needs stride 1, got stride=({geom.stride_h}, {geom.stride_w})"
    return None


def decline(geom: ConvGeometry) -> str | None:
    """Winograd F(2x2, 3x3) needs a 3x3 kernel and stride 1 (any dilation: WG8)."""
    return decline_tiled(geom, F2)


def _constants(xp: ModuleType, dtype: object, t: Tiling) -> tuple[Array, Array, Array]:
    return (
        xp.asarray(t.B_T, dtype=dtype),
        xp.asarray(t.G, dtype=dtype),
        xp.asarray(t.A_T, dtype=dtype),
    )


def _tile_counts(geom: ConvGeometry, t: Tiling) -> tuple[int, int]:
    return math.ceil(geom.P / t.m), math.ceil(geom.Q / t.m)


def _input_tiles(x: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """x -> d (N, C, a, a, Th, Tw): d[..., i, j, ti, tj] = x_ext[..., m·ti + i, m·tj + j]."""
    xp = get_xp(x)
    T_h, T_w = _tile_counts(geom, t)
    m, a = t.m, t.a
    x_pad = pad_input(xp, x, geom)
    Hp, Wp = geom.padded_hw
    x_ext = xp.pad(x_pad, ((0, 0), (0, 0), (0, m * T_h + 2 - Hp), (0, m * T_w + 2 - Wp)))
    d = xp.empty((geom.N, geom.C, a, a, T_h, T_w), dtype=x.dtype)
    for i in range(a):
        for j in range(a):
            d[:, :, i, j] = x_ext[:, :, i : i + m * T_h : m, j : j + m * T_w : m]
    return d


def _input_transform(x: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """(WG2): V (a, a, N, G, C/G, Th*Tw)."""
    xp = get_xp(x)
    B_T, _, _ = _constants(xp, x.dtype, t)
    d = _input_tiles(x, geom, t)
    V = xp.einsum("ia,ncabtu,jb->ijnctu", B_T, d, B_T, optimize=True)  # (WG2)
    return V.reshape(t.a, t.a, geom.N, geom.groups, geom.C // geom.groups, -1)


def _kernel_transform(w: Array, geom: ConvGeometry, t: Tiling = F2) -> Array:
    """(WG1): U (a, a, G, K/G, C/G).

    In vector form G·g·Gᵀ is (G ⊗ G)·vec(g), so one product with the (a², 9) Kronecker
    matrix transforms every filter at once (a product over 3 × 3 trailing axes per filter
    costs NumPy a loop of length 3 per element: 30 ms for 512 × 512 filters).
    """
    xp = get_xp(w)
    _, G_mat, _ = _constants(xp, w.dtype, t)
    GG = xp.kron(G_mat, G_mat)  # (a², 9): GG[a·i + j, 3r + s] = G[i, r] * G[j, s]
    U = GG @ w.reshape(-1, 9).T  # (WG1) (a², K·C/G), filters in (g, k, c) order
    return U.reshape(t.a, t.a, geom.groups, geom.K // geom.groups, geom.C // geom.groups)


def _kernel_adjoint(dU: Array, geom: ConvGeometry, t: Tiling = F2) -> Array:
    """(WG7) dg = Gᵀ·dU·G for every filter, the adjoint of (WG1): dU (a, a, G, K/G, C/G) ->
    dw (K, C/G, 3, 3); in vector form vec(dg) = (G ⊗ G)ᵀ·vec(dU)."""
    xp = get_xp(dU)
    _, G_mat, _ = _constants(xp, dU.dtype, t)
    GG = xp.kron(G_mat, G_mat)  # (a², 9)
    dg = dU.reshape(t.positions, -1).T @ GG  # (WG7) (K·C/G, 9)
    return dg.reshape(geom.w_shape)


def _output_tiles_transform(dy: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """(WG5): Z (a, a, N, G, K/G, Th*Tw) from dy zero-extended to whole tiles."""
    xp = get_xp(dy)
    _, _, A_T = _constants(xp, dy.dtype, t)
    T_h, T_w = _tile_counts(geom, t)
    m = t.m
    dy_ext = xp.pad(dy, ((0, 0), (0, 0), (0, m * T_h - geom.P), (0, m * T_w - geom.Q)))
    tiles = dy_ext.reshape(geom.N, geom.K, T_h, m, T_w, m)  # (N, K, Th, m, Tw, m)
    Z = xp.einsum("ai,nktaub,bj->ijnktu", A_T, tiles, A_T, optimize=True)  # (WG5)
    return Z.reshape(t.a, t.a, geom.N, geom.groups, geom.K // geom.groups, -1)


@dataclass(frozen=True)
class _BatchedTiles:
    """The forward's V in the compiled kernels' layout (a², C, N·T), and its tiling."""

    V: Array
    m: int


def _grouped(X: Array, geom: ConvGeometry) -> Array:
    """(a², channels, N·T) -> (a², G, channels/G, N·T)."""
    return X.reshape(X.shape[0], geom.groups, X.shape[1] // geom.groups, X.shape[2])


@_native.twin(arrays="x, w")
def _forward_batched(x: Array, w: Array, geom: ConvGeometry, t: Tiling) -> tuple[Array, Any]:
    """(WG1)-(WG4) with the compiled transforms and a² whole-batch GEMMs."""
    V = winograd.winograd_input(x, geom, t.m)  # (WG2) (a², C, N·T)
    U = _kernel_transform(w, geom, t).reshape(t.positions, geom.groups, geom.K // geom.groups, -1)
    M = U @ _grouped(V, geom)  # (WG3) (a², G, K/G, C/G) @ (a², G, C/G, N·T)
    y = winograd.winograd_output(M.reshape(t.positions, geom.K, -1), geom, t.m)  # (WG4)
    return y, _BatchedTiles(V, t.m)


def _dx_batched(Z: Array, w: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """(WG6): M̄ = Uᵀ Z as a² GEMMs, then the compiled B M̄ Bᵀ and the tile scatter-add."""
    xp = get_xp(Z, w)
    U = _kernel_transform(w, geom, t).reshape(t.positions, geom.groups, geom.K // geom.groups, -1)
    U_T = xp.ascontiguousarray(U.transpose(0, 1, 3, 2))  # small; batched GEMMs want it dense
    M_bar = U_T @ _grouped(Z, geom)  # (WG6) (a², G, C/G, N·T)
    return winograd.winograd_dx(M_bar.reshape(t.positions, geom.C, -1), geom, t.m)  # (WG6)


def _dw_batched(Z: Array, V: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """(WG7): dU = Z Vᵀ summed over the batch inside a² GEMMs; dg = Gᵀ dU G."""
    xp = get_xp(Z, V)
    Z_g, V_g = _grouped(Z, geom), _grouped(V, geom)
    dU = xp.empty((t.positions, geom.groups, Z_g.shape[2], V_g.shape[2]), dtype=Z.dtype)
    for xi in range(t.positions):  # one GEMM per position and group: a batched matmul
        for g in range(geom.groups):  # over transposed operands runs at half the speed
            xp.matmul(Z_g[xi, g], V_g[xi, g].T, out=dU[xi, g])  # (WG7) sum over n and tiles
    dU = dU.reshape(t.a, t.a, *dU.shape[1:])
    return _kernel_adjoint(dU, geom, t)  # (WG7)


@_native.accelerated(_forward_batched)
def _dense_forward(x: Array, w: Array, geom: ConvGeometry, t: Tiling) -> tuple[Array, Any]:
    """(WG1)-(WG4) for dilation 1: y (N, K, P, Q) without bias, and V for (WG7)."""
    xp = get_xp(x, w)
    _, _, A_T = _constants(xp, x.dtype, t)
    V = _input_transform(x, geom, t)  # (a, a, N, G, C/G, T)
    U = _kernel_transform(w, geom, t)  # (a, a, G, K/G, C/G)
    M = U[:, :, None] @ V  # (WG3) (a, a, 1, G, K/G, C/G) @ (a, a, N, G, C/G, T)
    T_h, T_w = _tile_counts(geom, t)
    M = M.reshape(t.a, t.a, geom.N, geom.K, T_h, T_w)
    y = xp.einsum("ai,ijnktu,bj->nktaub", A_T, M, A_T, optimize=True)  # (WG4)
    y = y.reshape(geom.N, geom.K, t.m * T_h, t.m * T_w)  # (N, K, Th, m, Tw, m) -> whole tiles
    return y[:, :, : geom.P, : geom.Q], V


def _dx_from(Z: Array, w: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """(WG6): dx (N, C, H, W) from the transformed dy tiles Z."""
    xp = get_xp(Z, w)
    B_T, _, _ = _constants(xp, Z.dtype, t)
    U = _kernel_transform(w, geom, t)  # (a, a, G, K/G, C/G)
    M_bar = U.transpose(0, 1, 2, 4, 3)[:, :, None] @ Z  # (WG6) -> (a, a, N, G, C/G, T)
    T_h, T_w = _tile_counts(geom, t)
    m = t.m
    M_bar = M_bar.reshape(t.a, t.a, geom.N, geom.C, T_h, T_w)
    dd = xp.einsum("ia,ijnctu,jb->ncabtu", B_T, M_bar, B_T, optimize=True)  # (WG6)
    dx_ext = xp.zeros((geom.N, geom.C, m * T_h + 2, m * T_w + 2), dtype=Z.dtype)
    for i in range(t.a):
        for j in range(t.a):
            # tiles overlap by two rows and columns, so the scatter must add
            dx_ext[:, :, i : i + m * T_h : m, j : j + m * T_w : m] += dd[:, :, i, j]  # (WG6)
    Hp, Wp = geom.padded_hw
    return crop_padding(dx_ext[:, :, :Hp, :Wp], geom).copy()


def _dw_from(Z: Array, V: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """(WG7): dw (K, C/G, 3, 3) from the transformed dy tiles Z and input tiles V."""
    dU = (Z @ V.swapaxes(-1, -2)).sum(axis=2)  # (WG7) -> (a, a, G, K/G, C/G)
    return _kernel_adjoint(dU, geom, t)  # (WG7)


def _batched_tiles(saved: Any, x: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """The forward's V in the compiled layout, recomputed when the forward kept none."""
    if isinstance(saved, _BatchedTiles) and saved.m == t.m:
        return saved.V
    return winograd.winograd_input(x, geom, t.m)


@_native.twin(arrays="dy, x, w")
def _backward_batched(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool, t: Tiling
) -> tuple[Array | None, Array]:
    """(WG5)-(WG7) with the compiled transforms and a² whole-batch GEMMs."""
    Z = winograd.winograd_dy(dy, geom, t.m)  # (WG5) (a², K, N·T)
    V = _batched_tiles(saved, x, geom, t)
    return (_dx_batched(Z, w, geom, t) if need_dx else None), _dw_batched(Z, V, geom, t)


@_native.accelerated(_backward_batched)
def _dense_backward(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool, t: Tiling
) -> tuple[Array | None, Array]:
    """(WG5)-(WG7) for dilation 1, with one transform of dy; ``saved`` is the forward's V."""
    Z = _output_tiles_transform(dy, geom, t)  # (a, a, N, G, K/G, T)
    V = _numpy_saved(saved, x, geom, t)
    return (_dx_from(Z, w, geom, t) if need_dx else None), _dw_from(Z, V, geom, t)


def _numpy_saved(saved: Any, x: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """The forward's V in the einsum layout, recomputed when the forward kept none."""
    if saved is None or isinstance(saved, _BatchedTiles) or saved.shape[0] != t.a:
        return _input_transform(x, geom, t)
    return saved


@_native.twin(arrays="dy, w")
def _backward_data_batched(dy: Array, w: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """(WG5), (WG6) with the compiled transforms and a² whole-batch GEMMs."""
    return _dx_batched(winograd.winograd_dy(dy, geom, t.m), w, geom, t)  # (WG5), (WG6)


@_native.accelerated(_backward_data_batched)
def _dense_backward_data(dy: Array, w: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """(WG5), (WG6) for dilation 1: dx (N, C, H, W), the adjoint of the forward in d."""
    return _dx_from(_output_tiles_transform(dy, geom, t), w, geom, t)


@_native.twin(arrays="dy, x")
def _backward_weight_batched(
    dy: Array, x: Array, geom: ConvGeometry, saved: Any, t: Tiling
) -> Array:
    """(WG5), (WG7) with the compiled transforms and a² whole-batch GEMMs."""
    V = _batched_tiles(saved, x, geom, t)
    return _dw_batched(winograd.winograd_dy(dy, geom, t.m), V, geom, t)  # (WG5), (WG7)


@_native.accelerated(_backward_weight_batched)
def _dense_backward_weight(dy: Array, x: Array, geom: ConvGeometry, saved: Any, t: Tiling) -> Array:
    """(WG5), (WG7) for dilation 1: dw (K, C/G, 3, 3), the adjoint of the forward in g."""
    Z = _output_tiles_transform(dy, geom, t)
    return _dw_from(Z, _numpy_saved(saved, x, geom, t), geom, t)


# ----------------------------------------------------------------- dilation by phases (WG8)


def _phase_geometry(geom: ConvGeometry) -> ConvGeometry:
    """The dense 3x3 convolution of one phase (WG8), all dil_h·dil_w phases as one batch."""
    dh, dw = geom.dil_h, geom.dil_w
    Hp, Wp = geom.padded_hw
    h, w = -(-Hp // dh), -(-Wp // dw)
    return ConvGeometry(
        N=dh * dw * geom.N, C=geom.C, H=h, W=w, K=geom.K, R=3, S=3, P=h - 2, Q=w - 2,
        groups=geom.groups, stride_h=1, stride_w=1, dil_h=1, dil_w=1,
        pad_top=0, pad_bottom=0, pad_left=0, pad_right=0,
    )  # fmt: skip


def _split(a: Array, rows: int, cols: int, geom: ConvGeometry) -> Array:
    """(WG8) a (N, ch, <=rows·dh, <=cols·dw), zero-extended -> phases (dh·dw·N, ch, rows, cols):
    phase (alpha, beta) holds a[..., i·dh + alpha, j·dw + beta]."""
    xp = get_xp(a)
    dh, dw = geom.dil_h, geom.dil_w
    N, ch = a.shape[0], a.shape[1]
    ext = xp.zeros((N, ch, rows * dh, cols * dw), dtype=a.dtype)
    ext[:, :, : a.shape[2], : a.shape[3]] = a
    phases = ext.reshape(N, ch, rows, dh, cols, dw).transpose(3, 5, 0, 1, 2, 4)
    return phases.reshape(dh * dw * N, ch, rows, cols)


def _merge(phases: Array, geom: ConvGeometry) -> Array:
    """The inverse of :func:`_split`: (dh·dw·N, ch, rows, cols) -> (N, ch, rows·dh, cols·dw)."""
    dh, dw = geom.dil_h, geom.dil_w
    _, ch, rows, cols = phases.shape
    a = phases.reshape(dh, dw, geom.N, ch, rows, cols).transpose(2, 3, 4, 0, 5, 1)
    return a.reshape(geom.N, ch, rows * dh, cols * dw)


def _blocks(geom: ConvGeometry, pass_name: str, a: Array, t: Tiling) -> Any:
    """The blocks of a pass past the workspace budget (conv2d_workspace), or None: whole."""
    name = "winograd" if t is F2 else "winograd4"
    compiled = _native.runs_compiled(a)
    return conv2d_cost_model.blocks(name, geom, pass_name, a.dtype.itemsize, compiled)


def forward_tiled(x: Array, w: Array, geom: ConvGeometry, t: Tiling) -> tuple[Array, Any]:
    """(WG1)-(WG4) with tiling ``t``, and (WG8) for a dilated kernel: y (N, K, P, Q) without
    bias, and the transformed input tiles for the weight gradient (WG7) where the backward
    runs whole (within the workspace budget); past the budget, block by block."""
    plan = _blocks(geom, "forward", x, t)
    if plan is not None:
        forward_part = functools.partial(_forward_whole, t=t)
        return conv2d_workspace.forward_by_blocks(forward_part, x, w, geom, plan), None
    y, saved = _forward_whole(x, w, geom, t)
    if _blocks(geom, "backward", x, t) is not None:
        saved = None  # the backward goes block by block and transforms x again
    return y, saved


def _forward_whole(x: Array, w: Array, geom: ConvGeometry, t: Tiling) -> tuple[Array, Any]:
    """(WG1)-(WG4), (WG8) over the whole layer at once."""
    if geom.dil_h == geom.dil_w == 1:
        return _dense_forward(x, w, geom, t)
    xp = get_xp(x, w)
    sub = _phase_geometry(geom)
    x_sub = _split(pad_input(xp, x, geom), sub.H, sub.W, geom)  # (WG8)
    y_sub, saved = _dense_forward(x_sub, w, sub, t)
    y = _merge(y_sub, geom)[:, :, : geom.P, : geom.Q]  # (WG8) interleave the phases
    return xp.ascontiguousarray(y), saved


def _dy_phases(dy: Array, geom: ConvGeometry, sub: ConvGeometry) -> Array:
    return _split(dy, sub.P, sub.Q, geom)  # (WG8) outputs past P x Q are zero


def _dx_merged(dx_sub: Array, geom: ConvGeometry) -> Array:
    """Phase gradients -> dx (N, C, H, W): interleave, then keep the cells that are x."""
    Hp, Wp = geom.padded_hw
    dx_pad = _merge(dx_sub, geom)[:, :, :Hp, :Wp]  # (WG8)
    return get_xp(dx_sub).ascontiguousarray(crop_padding(dx_pad, geom))


def backward_tiled(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool, t: Tiling
) -> tuple[Array | None, Array]:
    """(WG5)-(WG7) with one transform of dy, (WG8) for a dilated kernel; block by block past
    the workspace budget (dw summed over the blocks, ``saved`` unused)."""
    plan = _blocks(geom, "backward" if need_dx else "weight", dy, t)
    if plan is not None:
        backward_part = functools.partial(_backward_whole, t=t)
        return conv2d_workspace.backward_by_blocks(backward_part, dy, x, w, geom, plan, need_dx)
    return _backward_whole(dy, x, w, geom, saved, need_dx, t)


def _backward_whole(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool, t: Tiling
) -> tuple[Array | None, Array]:
    """(WG5)-(WG8) over the whole layer at once."""
    if geom.dil_h == geom.dil_w == 1:
        return _dense_backward(dy, x, w, geom, saved, need_dx, t)
    xp = get_xp(dy, x, w)
    sub = _phase_geometry(geom)
    x_sub = _split(pad_input(xp, x, geom), sub.H, sub.W, geom)
    dx_sub, dw = _dense_backward(_dy_phases(dy, geom, sub), x_sub, w, sub, saved, need_dx, t)
    return (None if dx_sub is None else _dx_merged(dx_sub, geom)), dw


def backward_data_tiled(dy: Array, w: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """(WG5), (WG6), (WG8): dx (N, C, H, W), the adjoint of the forward in d; block by block
    past the workspace budget."""
    plan = _blocks(geom, "data", dy, t)
    if plan is not None:
        data_part = functools.partial(_backward_data_whole, t=t)
        return conv2d_workspace.backward_data_by_blocks(data_part, dy, w, geom, plan)
    return _backward_data_whole(dy, w, geom, t)


def _backward_data_whole(dy: Array, w: Array, geom: ConvGeometry, t: Tiling) -> Array:
    """(WG5), (WG6), (WG8) over the whole layer at once."""
    if geom.dil_h == geom.dil_w == 1:
        return _dense_backward_data(dy, w, geom, t)
    sub = _phase_geometry(geom)
    return _dx_merged(_dense_backward_data(_dy_phases(dy, geom, sub), w, sub, t), geom)


def backward_weight_tiled(dy: Array, x: Array, geom: ConvGeometry, saved: Any, t: Tiling) -> Array:
    """(WG5), (WG7), (WG8): dw (K, C/G, 3, 3), the adjoint of the forward in g; the phases
    are one batch, so their contributions add up inside (WG7)'s sum over images. Block by
    block past the workspace budget (``saved`` unused)."""
    plan = _blocks(geom, "weight", dy, t)
    if plan is not None:
        weight_part = functools.partial(_backward_weight_whole, t=t)
        return conv2d_workspace.backward_weight_by_blocks(weight_part, dy, x, geom, plan)
    return _backward_weight_whole(dy, x, geom, saved, t)


def _backward_weight_whole(dy: Array, x: Array, geom: ConvGeometry, saved: Any, t: Tiling
                           ) -> Array:  # fmt: skip
    """(WG5), (WG7), (WG8) over the whole layer at once."""
    if geom.dil_h == geom.dil_w == 1:
        return _dense_backward_weight(dy, x, geom, saved, t)
    xp = get_xp(dy, x)
    sub = _phase_geometry(geom)
    x_sub = _split(pad_input(xp, x, geom), sub.H, sub.W, geom)
    return _dense_backward_weight(_dy_phases(dy, geom, sub), x_sub, sub, saved, t)


# ------------------------------------------------------------- the algorithm "winograd"


def forward(x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]:
    """F(2x2, 3x3): y (N, K, P, Q) without bias, and the input tiles for (WG7)."""
    return forward_tiled(x, w, geom, F2)


def backward(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """F(2x2, 3x3): (WG5)-(WG7) with one transform of dy."""
    return backward_tiled(dy, x, w, geom, saved, need_dx, F2)


def backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """F(2x2, 3x3): dx (N, C, H, W) by (WG5), (WG6)."""
    return backward_data_tiled(dy, w, geom, F2)


def backward_weight(dy: Array, x: Array, geom: ConvGeometry, saved: Any = None) -> Array:
    """F(2x2, 3x3): dw (K, C/G, 3, 3) by (WG5), (WG7)."""
    return backward_weight_tiled(dy, x, geom, saved, F2)
