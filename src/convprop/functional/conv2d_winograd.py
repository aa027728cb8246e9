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

On the CPU the four tile transforms (WG2, WG4, WG5, WG6) run as compiled kernels (see
convprop.native) in a layout X[xi, channel, n·T + t] (xi = 4i + j one of the 16 tile
positions, T tiles per image), so that (WG3), (WG6) and (WG7) are 16 GEMMs over the whole
batch at once. CuPy arrays, or an install without the kernels, take the einsum code below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from convprop import native
from convprop._shapes import ConvGeometry
from convprop.backend import Array, get_xp
from convprop.functional._conv_common import crop_padding, pad_input

NAME = "winograd"

# The transform matrices as exact Python numbers; made into arrays of the input's module
# and dtype on use.
_B_T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
_G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
_A_T = [[1, 1, 1, 0], [0, 1, -1, -1]]


def decline(geom: ConvGeometry) -> str | None:
    """Winograd F(2x2, 3x3) needs a 3x3 kernel and stride 1 (any dilation: WG8)."""
    if (geom.R, geom.S) != (3, 3):
        return f"F(2x2, 3x3) needs a 3x3 kernel, got R x S = {geom.R} x {geom.S}"
    if (geom.stride_h, geom.stride_w) != (1, 1):
        return f"F(2x2, 3x3) needs stride 1, got stride=({geom.stride_h}, {geom.stride_w})"
    return None


def _constants(xp: ModuleType, dtype: object) -> tuple[Array, Array, Array]:
    return (
        xp.asarray(_B_T, dtype=dtype),
        xp.asarray(_G, dtype=dtype),
        xp.asarray(_A_T, dtype=dtype),
    )


def _tile_counts(geom: ConvGeometry) -> tuple[int, int]:
    return math.ceil(geom.P / 2), math.ceil(geom.Q / 2)


def _input_tiles(x: Array, geom: ConvGeometry) -> Array:
    """x -> d (N, C, 4, 4, Th, Tw): d[..., a, b, i, j] = x_ext[..., 2i + a, 2j + b]."""
    xp = get_xp(x)
    T_h, T_w = _tile_counts(geom)
    x_pad = pad_input(xp, x, geom)
    Hp, Wp = geom.padded_hw
    x_ext = xp.pad(x_pad, ((0, 0), (0, 0), (0, 2 * T_h + 2 - Hp), (0, 2 * T_w + 2 - Wp)))
    d = xp.empty((geom.N, geom.C, 4, 4, T_h, T_w), dtype=x.dtype)
    for a in range(4):
        for b in range(4):
            d[:, :, a, b] = x_ext[:, :, a : a + 2 * T_h : 2, b : b + 2 * T_w : 2]
    return d


def _input_transform(x: Array, geom: ConvGeometry) -> Array:
    """(WG2): V (4, 4, N, G, C/G, Th*Tw)."""
    xp = get_xp(x)
    B_T, _, _ = _constants(xp, x.dtype)
    d = _input_tiles(x, geom)
    V = xp.einsum("ia,ncabtu,jb->ijnctu", B_T, d, B_T, optimize=True)  # (WG2)
    return V.reshape(4, 4, geom.N, geom.groups, geom.C // geom.groups, -1)


def _kernel_transform(w: Array, geom: ConvGeometry) -> Array:
    """(WG1): U (4, 4, G, K/G, C/G).

    In vector form G·g·Gᵀ is (G ⊗ G)·vec(g), so one product with the (16, 9) Kronecker
    matrix transforms every filter at once (a product over 3 × 3 trailing axes per filter
    costs NumPy a loop of length 3 per element: 30 ms for 512 × 512 filters).
    """
    xp = get_xp(w)
    _, G_mat, _ = _constants(xp, w.dtype)
    GG = xp.kron(G_mat, G_mat)  # (16, 9): GG[4i + j, 3r + s] = G[i, r] * G[j, s]
    U = GG @ w.reshape(-1, 9).T  # (WG1) (16, K·C/G), filters in (g, k, c) order
    return U.reshape(4, 4, geom.groups, geom.K // geom.groups, geom.C // geom.groups)


def _kernel_adjoint(dU: Array, geom: ConvGeometry) -> Array:
    """(WG7) dg = Gᵀ·dU·G for every filter, the adjoint of (WG1): dU (4, 4, G, K/G, C/G) ->
    dw (K, C/G, 3, 3); in vector form vec(dg) = (G ⊗ G)ᵀ·vec(dU)."""
    xp = get_xp(dU)
    _, G_mat, _ = _constants(xp, dU.dtype)
    GG = xp.kron(G_mat, G_mat)  # (16, 9)
    dg = dU.reshape(16, -1).T @ GG  # (WG7) (K·C/G, 9)
    return dg.reshape(geom.w_shape)


def _output_tiles_transform(dy: Array, geom: ConvGeometry) -> Array:
    """(WG5): Z (4, 4, N, G, K/G, Th*Tw) from dy zero-extended to whole tiles."""
    xp = get_xp(dy)
    _, _, A_T = _constants(xp, dy.dtype)
    T_h, T_w = _tile_counts(geom)
    dy_ext = xp.pad(dy, ((0, 0), (0, 0), (0, 2 * T_h - geom.P), (0, 2 * T_w - geom.Q)))
    tiles = dy_ext.reshape(geom.N, geom.K, T_h, 2, T_w, 2)  # (N, K, Th, 2, Tw, 2)
    Z = xp.einsum("ai,nktaub,bj->ijnktu", A_T, tiles, A_T, optimize=True)  # (WG5)
    return Z.reshape(4, 4, geom.N, geom.groups, geom.K // geom.groups, -1)


@dataclass(frozen=True)
class _BatchedTiles:
    """The forward's V in the compiled kernels' layout (16, C, N·T)."""

    V: Array


def _grouped(X: Array, geom: ConvGeometry) -> Array:
    """(16, channels, N·T) -> (16, G, channels/G, N·T)."""
    return X.reshape(16, geom.groups, X.shape[1] // geom.groups, X.shape[2])


def _forward_batched(x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]:
    """(WG1)-(WG4) with the compiled transforms and 16 whole-batch GEMMs."""
    V = native.winograd_input(x, geom)  # (WG2) (16, C, N·T)
    U = _kernel_transform(w, geom).reshape(16, geom.groups, geom.K // geom.groups, -1)  # (WG1)
    M = U @ _grouped(V, geom)  # (WG3) (16, G, K/G, C/G) @ (16, G, C/G, N·T)
    y = native.winograd_output(M.reshape(16, geom.K, -1), geom)  # (WG4)
    return y, _BatchedTiles(V)


def _dx_batched(Z: Array, w: Array, geom: ConvGeometry) -> Array:
    """(WG6): M̄ = Uᵀ Z as 16 GEMMs, then the compiled B M̄ Bᵀ and the tile scatter-add."""
    xp = get_xp(Z, w)
    U = _kernel_transform(w, geom).reshape(16, geom.groups, geom.K // geom.groups, -1)
    U_T = xp.ascontiguousarray(U.transpose(0, 1, 3, 2))  # small; batched GEMMs want it dense
    M_bar = U_T @ _grouped(Z, geom)  # (WG6) (16, G, C/G, N·T)
    return native.winograd_dx(M_bar.reshape(16, geom.C, -1), geom)  # (WG6)


def _dw_batched(Z: Array, V: Array, geom: ConvGeometry) -> Array:
    """(WG7): dU = Z Vᵀ summed over the batch inside 16 GEMMs; dg = Gᵀ dU G."""
    xp = get_xp(Z, V)
    Z_g, V_g = _grouped(Z, geom), _grouped(V, geom)
    dU = xp.empty((16, geom.groups, Z_g.shape[2], V_g.shape[2]), dtype=Z.dtype)
    for xi in range(16):  # one GEMM per position and group: a batched matmul over
        for g in range(geom.groups):  # transposed operands runs at half the speed
            xp.matmul(Z_g[xi, g], V_g[xi, g].T, out=dU[xi, g])  # (WG7) sum over n and tiles
    dU = dU.reshape(4, 4, *dU.shape[1:])
    return _kernel_adjoint(dU, geom)  # (WG7)


def _dense_forward(x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]:
    """(WG1)-(WG4) for dilation 1: y (N, K, P, Q) without bias, and V for (WG7)."""
    if native.serves(x, w):
        return _forward_batched(x, w, geom)
    xp = get_xp(x, w)
    _, _, A_T = _constants(xp, x.dtype)
    V = _input_transform(x, geom)  # (4, 4, N, G, C/G, T)
    U = _kernel_transform(w, geom)  # (4, 4, G, K/G, C/G)
    M = U[:, :, None] @ V  # (WG3) (4, 4, 1, G, K/G, C/G) @ (4, 4, N, G, C/G, T)
    T_h, T_w = _tile_counts(geom)
    M = M.reshape(4, 4, geom.N, geom.K, T_h, T_w)
    y = xp.einsum("ai,ijnktu,bj->nktaub", A_T, M, A_T, optimize=True)  # (WG4)
    y = y.reshape(geom.N, geom.K, 2 * T_h, 2 * T_w)  # (N, K, Th, 2, Tw, 2) -> (N, K, 2Th, 2Tw)
    return y[:, :, : geom.P, : geom.Q], V


def _dx_from(Z: Array, w: Array, geom: ConvGeometry) -> Array:
    """(WG6): dx (N, C, H, W) from the transformed dy tiles Z."""
    xp = get_xp(Z, w)
    B_T, _, _ = _constants(xp, Z.dtype)
    U = _kernel_transform(w, geom)  # (4, 4, G, K/G, C/G)
    M_bar = U.transpose(0, 1, 2, 4, 3)[:, :, None] @ Z  # (WG6) -> (4, 4, N, G, C/G, T)
    T_h, T_w = _tile_counts(geom)
    M_bar = M_bar.reshape(4, 4, geom.N, geom.C, T_h, T_w)
    dd = xp.einsum("ia,ijnctu,jb->ncabtu", B_T, M_bar, B_T, optimize=True)  # (WG6)
    dx_ext = xp.zeros((geom.N, geom.C, 2 * T_h + 2, 2 * T_w + 2), dtype=Z.dtype)
    for a in range(4):
        for b in range(4):
            # tiles overlap by two rows and columns, so the scatter must add
            dx_ext[:, :, a : a + 2 * T_h : 2, b : b + 2 * T_w : 2] += dd[:, :, a, b]  # (WG6)
    Hp, Wp = geom.padded_hw
    return crop_padding(dx_ext[:, :, :Hp, :Wp], geom).copy()


def _dw_from(Z: Array, V: Array, geom: ConvGeometry) -> Array:
    """(WG7): dw (K, C/G, 3, 3) from the transformed dy tiles Z and input tiles V."""
    dU = (Z @ V.swapaxes(-1, -2)).sum(axis=2)  # (WG7) -> (4, 4, G, K/G, C/G)
    return _kernel_adjoint(dU, geom)  # (WG7)


def _dense_backward(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(WG5)-(WG7) for dilation 1, with one transform of dy; ``saved`` is the forward's V."""
    if native.serves(dy, x, w):
        Z = native.winograd_dy(dy, geom)  # (WG5) (16, K, N·T)
        V = saved.V if isinstance(saved, _BatchedTiles) else native.winograd_input(x, geom)
        return (_dx_batched(Z, w, geom) if need_dx else None), _dw_batched(Z, V, geom)
    Z = _output_tiles_transform(dy, geom)  # (4, 4, N, G, K/G, T)
    V = _numpy_saved(saved, x, geom)
    return (_dx_from(Z, w, geom) if need_dx else None), _dw_from(Z, V, geom)


def _numpy_saved(saved: Any, x: Array, geom: ConvGeometry) -> Array:
    """The forward's V in the einsum layout, recomputed when the forward kept none."""
    if saved is None or isinstance(saved, _BatchedTiles):
        return _input_transform(x, geom)
    return saved


def _dense_backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(WG5), (WG6) for dilation 1: dx (N, C, H, W), the adjoint of the forward in d."""
    if native.serves(dy, w):
        return _dx_batched(native.winograd_dy(dy, geom), w, geom)  # (WG5), (WG6)
    return _dx_from(_output_tiles_transform(dy, geom), w, geom)


def _dense_backward_weight(dy: Array, x: Array, geom: ConvGeometry, saved: Any) -> Array:
    """(WG5), (WG7) for dilation 1: dw (K, C/G, 3, 3), the adjoint of the forward in g."""
    if native.serves(dy, x):
        V = saved.V if isinstance(saved, _BatchedTiles) else native.winograd_input(x, geom)
        return _dw_batched(native.winograd_dy(dy, geom), V, geom)  # (WG5), (WG7)
    return _dw_from(_output_tiles_transform(dy, geom), _numpy_saved(saved, x, geom), geom)


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


def forward(x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]:
    """(WG1)-(WG4), and (WG8) for a dilated kernel: y (N, K, P, Q) without bias, and the
    transformed input tiles for the weight gradient (WG7)."""
    if geom.dil_h == geom.dil_w == 1:
        return _dense_forward(x, w, geom)
    xp = get_xp(x, w)
    sub = _phase_geometry(geom)
    x_sub = _split(pad_input(xp, x, geom), sub.H, sub.W, geom)  # (WG8)
    y_sub, saved = _dense_forward(x_sub, w, sub)
    y = _merge(y_sub, geom)[:, :, : geom.P, : geom.Q]  # (WG8) interleave the phases
    return xp.ascontiguousarray(y), saved


def _dy_phases(dy: Array, geom: ConvGeometry, sub: ConvGeometry) -> Array:
    return _split(dy, sub.P, sub.Q, geom)  # (WG8) outputs past P x Q are zero


def _dx_merged(dx_sub: Array, geom: ConvGeometry) -> Array:
    """Phase gradients -> dx (N, C, H, W): interleave, then keep the cells that are x."""
    Hp, Wp = geom.padded_hw
    dx_pad = _merge(dx_sub, geom)[:, :, :Hp, :Wp]  # (WG8)
    return get_xp(dx_sub).ascontiguousarray(crop_padding(dx_pad, geom))


def backward(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(WG5)-(WG7) with one transform of dy, (WG8) for a dilated kernel."""
    if geom.dil_h == geom.dil_w == 1:
        return _dense_backward(dy, x, w, geom, saved, need_dx)
    xp = get_xp(dy, x, w)
    sub = _phase_geometry(geom)
    x_sub = _split(pad_input(xp, x, geom), sub.H, sub.W, geom)
    dx_sub, dw = _dense_backward(_dy_phases(dy, geom, sub), x_sub, w, sub, saved, need_dx)
    return (None if dx_sub is None else _dx_merged(dx_sub, geom)), dw


def backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(WG5), (WG6), (WG8): dx (N, C, H, W), the adjoint of the forward in d."""
    if geom.dil_h == geom.dil_w == 1:
        return _dense_backward_data(dy, w, geom)
    sub = _phase_geometry(geom)
    return _dx_merged(_dense_backward_data(_dy_phases(dy, geom, sub), w, sub), geom)


def backward_weight(dy: Array, x: Array, geom: ConvGeometry, saved: Any = None) -> Array:
    """(WG5), (WG7), (WG8): dw (K, C/G, 3, 3), the adjoint of the forward in g; the phases
    are one batch, so their contributions add up inside (WG7)'s sum over images."""
    if geom.dil_h == geom.dil_w == 1:
        return _dense_backward_weight(dy, x, geom, saved)
    xp = get_xp(dy, x)
    sub = _phase_geometry(geom)
    x_sub = _split(pad_input(xp, x, geom), sub.H, sub.W, geom)
    return _dense_backward_weight(_dy_phases(dy, geom, sub), x_sub, sub, saved)
