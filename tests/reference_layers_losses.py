"""Naive float64 references for docs/derivations.md section 25 (GE, SI, EL, LN, GN, DO7–DO10,
PD, UP, RD, NLL, CE5–CE10, BCE, MSE4–MSE6).

Written from the equations alone, as explicit loops over elements, slow on purpose and
independent of the code under test: nothing here imports convprop. Normalisation
gradients come from the Jacobian summed entry by entry (not the closed form LN8), padding
and interpolation from the per-element source of each output (not the axis-by-axis
gathers), and the losses from per-position sums.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np


def _map(x: np.ndarray, f: Callable[[float], float]) -> np.ndarray:
    out = np.empty(np.shape(x))
    for index in np.ndindex(np.shape(x)):
        out[index] = f(float(x[index]))
    return out


# -- activations (GE1–GE6, SI1, SI2, EL1, EL2) ---------------------------------------------------
def _phi_cdf(v: float) -> float:
    return 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))  # (GE1)


def _tanh_u(v: float) -> float:
    return math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3))  # (GE4)


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return _map(x, lambda v: 0.5 * v * (1.0 + _tanh_u(v)))  # (GE5)
    return _map(x, lambda v: v * _phi_cdf(v))  # (GE2)


def gelu_grad(x: np.ndarray, dy: np.ndarray, approximate: str) -> np.ndarray:
    def derivative(v: float) -> float:
        if approximate == "tanh":
            t = _tanh_u(v)
            inner = math.sqrt(2.0 / math.pi) * (1.0 + 3 * 0.044715 * v * v)
            return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * inner  # (GE6)
        return _phi_cdf(v) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)  # (GE3)

    return dy * _map(x, derivative)  # (A1)


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


def silu(x: np.ndarray) -> np.ndarray:
    return _map(x, lambda v: v * _sigmoid(v))  # (SI1)


def silu_grad(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy * _map(x, lambda v: _sigmoid(v) * (1.0 + v * (1.0 - _sigmoid(v))))  # (SI2)


def elu(x: np.ndarray, alpha: float) -> np.ndarray:
    return _map(x, lambda v: v if v > 0 else alpha * math.expm1(v))  # (EL1)


def elu_grad(x: np.ndarray, dy: np.ndarray, alpha: float) -> np.ndarray:
    return dy * _map(x, lambda v: 1.0 if v > 0 else alpha * math.exp(v))  # (EL2)


# -- normalisation (LN1–LN8, GN1–GN4) ---------------------------------------------------------
def _standardize_rows(
    rows: list[list[tuple[int, ...]]], x: np.ndarray, eps: float
) -> tuple[dict[tuple[int, ...], float], dict[int, float]]:
    """x̂ at every index of every row (LN1)–(LN3), and invstd per row."""
    xhat: dict[tuple[int, ...], float] = {}
    invstd: dict[int, float] = {}
    for r, members in enumerate(rows):
        M = len(members)
        mean = sum(float(x[i]) for i in members) / M  # (LN1)
        var = sum((float(x[i]) - mean) ** 2 for i in members) / M  # (LN2)
        invstd[r] = 1.0 / math.sqrt(var + eps)  # (LN3)
        for i in members:
            xhat[i] = (float(x[i]) - mean) * invstd[r]
    return xhat, invstd


def _rows_backward(
    rows: list[list[tuple[int, ...]]],
    xhat: dict[tuple[int, ...], float],
    invstd: dict[int, float],
    dxhat: dict[tuple[int, ...], float],
    shape: tuple[int, ...],
) -> np.ndarray:
    """dx from dx̂ through the row statistics, by the Jacobian entry by entry:
    ∂x̂_j/∂x_i = invstd·([i = j] − 1/M − x̂_i·x̂_j/M) (not the closed form LN8)."""
    dx = np.zeros(shape)
    for r, members in enumerate(rows):
        M = len(members)
        for i in members:
            for j in members:
                kronecker = 1.0 if i == j else 0.0
                jac = invstd[r] * (kronecker - 1.0 / M - xhat[i] * xhat[j] / M)
                dx[i] += dxhat[j] * jac
    return dx


def _layer_rows(shape: tuple[int, ...], k: int) -> list[list[tuple[int, ...]]]:
    lead, tail = shape[: len(shape) - k], shape[len(shape) - k :]
    return [[(*lead_i, *tail_i) for tail_i in np.ndindex(tail)] for lead_i in np.ndindex(lead)]


def layer_norm(
    x: np.ndarray, k: int, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float
) -> np.ndarray:
    """(LN1)–(LN4) over the last k axes."""
    rows = _layer_rows(x.shape, k)
    xhat, _ = _standardize_rows(rows, x, eps)
    y = np.empty(x.shape)
    for i in np.ndindex(x.shape):
        tail = i[len(i) - k :]
        g = 1.0 if gamma is None else float(gamma[tail])
        b = 0.0 if beta is None else float(beta[tail])
        y[i] = g * xhat[i] + b  # (LN4)
    return y


def layer_norm_grad(
    x: np.ndarray, k: int, gamma: np.ndarray | None, dy: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx, dγ (LN6), dβ (LN5) with dγ, dβ of the normalised shape."""
    rows = _layer_rows(x.shape, k)
    xhat, invstd = _standardize_rows(rows, x, eps)
    tail_shape = x.shape[len(x.shape) - k :]
    dgamma, dbeta = np.zeros(tail_shape), np.zeros(tail_shape)
    dxhat = {}
    for i in np.ndindex(x.shape):
        tail = i[len(i) - k :]
        dbeta[tail] += dy[i]  # (LN5)
        dgamma[tail] += dy[i] * xhat[i]  # (LN6)
        dxhat[i] = float(dy[i]) * (1.0 if gamma is None else float(gamma[tail]))  # (LN7)
    return _rows_backward(rows, xhat, invstd, dxhat, x.shape), dgamma, dbeta


def _group_rows(shape: tuple[int, ...], groups: int) -> list[list[tuple[int, ...]]]:
    N, C, rest = shape[0], shape[1], shape[2:]
    per = C // groups
    return [
        [(n, c, *pos) for c in range(g * per, (g + 1) * per) for pos in np.ndindex(rest)]
        for n in range(N)
        for g in range(groups)
    ]  # (GN1)


def group_norm(
    x: np.ndarray, groups: int, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float
) -> np.ndarray:
    """(GN1), (LN1)–(LN3), (GN2)."""
    xhat, _ = _standardize_rows(_group_rows(x.shape, groups), x, eps)
    y = np.empty(x.shape)
    for i in np.ndindex(x.shape):
        g = 1.0 if gamma is None else float(gamma[i[1]])
        b = 0.0 if beta is None else float(beta[i[1]])
        y[i] = g * xhat[i] + b  # (GN2)
    return y


def group_norm_grad(
    x: np.ndarray, groups: int, gamma: np.ndarray | None, dy: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx, dγ, dβ (GN3), with dx̂ = dy·γ_c (GN4) through the Jacobian."""
    rows = _group_rows(x.shape, groups)
    xhat, invstd = _standardize_rows(rows, x, eps)
    C = x.shape[1]
    dgamma, dbeta = np.zeros(C), np.zeros(C)
    dxhat = {}
    for i in np.ndindex(x.shape):
        dbeta[i[1]] += dy[i]  # (GN3)
        dgamma[i[1]] += dy[i] * xhat[i]  # (GN3)
        dxhat[i] = float(dy[i]) * (1.0 if gamma is None else float(gamma[i[1]]))  # (GN4)
    return _rows_backward(rows, xhat, invstd, dxhat, x.shape), dgamma, dbeta


# -- channel dropout (DO7–DO10) ----------------------------------------------------------------
def dropout2d(x: np.ndarray, keep: np.ndarray, p: float) -> np.ndarray:
    """(DO9) with keep[n, c] the mask (DO8)."""
    y = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        if keep[i[0], i[1]]:
            y[i] = float(x[i]) / (1.0 - p)
    return y


# -- padding (PD1–PD7) ---------------------------------------------------------------------------
def _pad_source(mode: str, j: int, L: int, before: int, after: int) -> int | None:
    """The input position that output j of one axis reads (PD2)–(PD4); None: the fill."""
    s = j - before  # (PD2)
    if mode == "constant":
        return s if 0 <= s < L else None  # (PD3)
    if mode == "reflect":
        while s < 0 or s >= L:
            s = -s if s < 0 else 2 * (L - 1) - s
        return s
    if mode == "replicate":
        return 0 if s < 0 else (L - 1 if s >= L else s)
    crop = max(0, -before)  # circular: crop, then wrap
    kept = L - crop - max(0, -after)
    return crop + (j - max(before, 0)) % kept  # (PD4)


def _pad_pairs(ndim: int, pad: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    return {ndim - 1 - k: (pad[2 * k], pad[2 * k + 1]) for k in range(len(pad) // 2)}


def pad_sources(
    x_shape: tuple[int, ...], pad: tuple[int, ...], mode: str
) -> Iterator[tuple[tuple[int, ...], tuple[int, ...] | None]]:
    """Each output index with the input index it reads (None for the fill value)."""
    pairs = _pad_pairs(len(x_shape), pad)
    out_shape = tuple(
        L + sum(pairs[a]) if a in pairs else L for a, L in enumerate(x_shape)
    )  # (PD1)
    for out in np.ndindex(out_shape):
        src: list[int] = []
        for a, j in enumerate(out):
            if a not in pairs:
                src.append(j)
                continue
            s = _pad_source(mode, j, x_shape[a], *pairs[a])
            if s is None:
                break
            src.append(s)
        yield out, (tuple(src) if len(src) == len(out) else None)


def pad(x: np.ndarray, pad_: tuple[int, ...], mode: str, value: float) -> np.ndarray:
    """(PD3), (PD5) element by element."""
    pairs = _pad_pairs(x.ndim, pad_)
    out_shape = tuple(L + sum(pairs[a]) if a in pairs else L for a, L in enumerate(x.shape))
    y = np.empty(out_shape)
    for out, src in pad_sources(x.shape, pad_, mode):
        y[out] = value if src is None else float(x[src])
    return y


def pad_grad(x_shape: tuple[int, ...], pad_: tuple[int, ...], mode: str, dy: np.ndarray):
    """(PD6), (PD7): each dy added into the input position it was read from."""
    dx = np.zeros(x_shape)
    for out, src in pad_sources(x_shape, pad_, mode):
        if src is not None:
            dx[src] += dy[out]
    return dx


# -- interpolation (UP1–UP7) --------------------------------------------------------------------
def interp_weights(
    L: int, Lo: int, mode: str, align_corners: bool, factor: float | None, dims: int
) -> list[dict[int, float]]:
    """For each output j of one axis, {input i: weight} (UP2)–(UP5)."""
    f32 = np.float32
    out: list[dict[int, float]] = []
    for j in range(Lo):
        if mode in ("nearest", "nearest-exact"):
            if dims == 2 and mode == "nearest" and Lo in (L, 2 * L):
                i = j if Lo == L else j // 2  # PyTorch's 2-D copy and halving
            elif dims == 2:
                r = f32(1.0 / factor) if factor else f32(f32(L) / f32(Lo))
                src = f32(f32(j) * r) if mode == "nearest" else f32((j + 0.5) * float(r))
                i = min(math.floor(float(src)), L - 1)
            else:
                r64 = 1.0 / factor if factor else L / Lo
                src = f32((j + (0.5 if mode == "nearest-exact" else 0.0)) * r64)
                i = min(math.floor(float(src)), L - 1)  # (UP3)
            out.append({i: 1.0})
            continue
        if Lo == L and not align_corners:
            out.append({j: 1.0})
            continue
        if align_corners:
            r = (L - 1) / (Lo - 1) if Lo > 1 else 0.0
            src = j * r
        else:
            r = 1.0 / factor if factor else L / Lo
            src = max((j + 0.5) * r - 0.5, 0.0)  # (UP4)
        i0 = min(math.floor(src), L - 1)
        i1 = i0 + 1 if i0 < L - 1 else i0
        lam1 = min(max(src - i0, 0.0), 1.0)
        weights: dict[int, float] = {}
        weights[i0] = weights.get(i0, 0.0) + (1.0 - lam1)  # (UP5)
        weights[i1] = weights.get(i1, 0.0) + lam1
        out.append(weights)
    return out


def interpolate(x: np.ndarray, axis_weights: list[list[dict[int, float]]]) -> np.ndarray:
    """y[n, c, j…] = Σ over the corners of the product of the per-axis weights (UP6)."""
    out_shape = x.shape[:2] + tuple(len(w) for w in axis_weights)
    y = np.zeros(out_shape)
    for out in np.ndindex(out_shape):
        n, c, spatial = out[0], out[1], out[2:]
        corners: list[tuple[tuple[int, ...], float]] = [((), 1.0)]
        for a, j in enumerate(spatial):
            corners = [
                ((*idx, i), w * lam) for idx, w in corners for i, lam in axis_weights[a][j].items()
            ]
        y[out] = sum(w * float(x[(n, c, *idx)]) for idx, w in corners)
    return y


def interpolate_grad(
    x_shape: tuple[int, ...], axis_weights: list[list[dict[int, float]]], dy: np.ndarray
) -> np.ndarray:
    """(UP7): Aᵀ dy, each dy entry added with its weight to the inputs it read."""
    dx = np.zeros(x_shape)
    for out in np.ndindex(dy.shape):
        n, c, spatial = out[0], out[1], out[2:]
        corners: list[tuple[tuple[int, ...], float]] = [((), 1.0)]
        for a, j in enumerate(spatial):
            corners = [
                ((*idx, i), w * lam) for idx, w in corners for i, lam in axis_weights[a][j].items()
            ]
        for idx, w in corners:
            dx[(n, c, *idx)] += w * float(dy[out])
    return dx


# -- losses (RD1–RD4, NLL1–NLL3, CE5–CE10, BCE1–BCE7, MSE4–MSE6) ----------------------------
def _positions(x_shape: tuple[int, ...]) -> list[tuple[tuple[int, ...], list[tuple[int, ...]]]]:
    """Each position i (x's index without the class axis) with x's indices (i, c), c = 0…C−1."""
    if len(x_shape) == 1:
        return [((), [(c,) for c in range(x_shape[0])])]
    N, C, rest = x_shape[0], x_shape[1], x_shape[2:]
    return [
        ((n, *pos), [(n, c, *pos) for c in range(C)]) for n in range(N) for pos in np.ndindex(rest)
    ]


def _log_softmax_row(values: list[float]) -> list[float]:
    shift = max(values)
    log_sum = math.log(sum(math.exp(v - shift) for v in values))
    return [v - shift - log_sum for v in values]


def _reduce(losses: np.ndarray, reduction: str, n: float) -> np.ndarray | float:
    if reduction == "none":
        return losses  # (RD1)
    total = float(sum(float(v) for v in losses.ravel()))  # (RD2)
    if reduction == "sum":
        return total
    return total / n if n else math.nan  # (RD3)


def class_loss(
    x: np.ndarray,
    target: np.ndarray,
    *,
    log_softmax: bool,
    weight: np.ndarray | None,
    ignore_index: int,
    smoothing: float,
    reduction: str,
) -> tuple[np.ndarray | float, np.ndarray]:
    """Cross-entropy (log_softmax=True, CE5–CE8) or NLL (NLL1, NLL2); also returns a (CE6)."""
    probabilities = target.dtype.kind == "f"
    C = x.shape[1] if x.ndim > 1 else x.shape[0]
    w = [1.0] * C if weight is None else [float(v) for v in weight]
    losses = np.zeros(target.shape if not probabilities else _loss_shape(x.shape))
    coef = np.zeros(x.shape)
    n = 0.0
    for pos, members in _positions(x.shape):
        scores = [float(x[i]) for i in members]
        logp = _log_softmax_row(scores) if log_softmax else scores  # (CE5)
        if probabilities:
            q = [(1 - smoothing) * float(target[i]) + smoothing / C for i in members]  # (CE6)
            n += 1
        else:
            t = int(target[pos])
            if t == ignore_index:
                continue
            q = [(1 - smoothing) * (1.0 if c == t else 0.0) + smoothing / C for c in range(C)]
            n += w[t]  # (NLL2), (CE8)
        for c, i in enumerate(members):
            coef[i] = w[c] * q[c]
        losses[pos] = -sum(w[c] * q[c] * logp[c] for c in range(C))  # (CE7), (NLL1)
    return _reduce(losses, reduction, n), coef


def _loss_shape(x_shape: tuple[int, ...]) -> tuple[int, ...]:
    return () if len(x_shape) == 1 else (x_shape[0], *x_shape[2:])


def class_loss_grad(
    x: np.ndarray,
    target: np.ndarray,
    dloss: np.ndarray | float,
    *,
    log_softmax: bool,
    weight: np.ndarray | None,
    ignore_index: int,
    smoothing: float,
    reduction: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    """dx by the chain rule through log-softmax written out, ∂logp_c/∂x_k = [c = k] − p_k
    (not the closed form CE9); and dtarget (CE10) for probabilities."""
    probabilities = target.dtype.kind == "f"
    options = {"weight": weight, "ignore_index": ignore_index, "smoothing": smoothing}
    _, coef = class_loss(x, target, log_softmax=log_softmax, reduction="sum", **options)
    C = x.shape[1] if x.ndim > 1 else x.shape[0]
    w = [1.0] * C if weight is None else [float(v) for v in weight]
    n = 0.0
    for pos, _members in _positions(x.shape):
        if probabilities:
            n += 1
        elif int(target[pos]) != ignore_index:
            n += w[int(target[pos])]
    dx = np.zeros(x.shape)
    dtarget = np.zeros(x.shape) if probabilities else None
    for pos, members in _positions(x.shape):
        if reduction == "none":
            g = float(np.asarray(dloss)[pos])
        else:
            g = float(dloss) / (n if reduction == "mean" else 1.0) if n else 0.0  # (RD4)
        scores = [float(x[i]) for i in members]
        logp = _log_softmax_row(scores) if log_softmax else scores
        p = [math.exp(v) for v in logp]
        dlogp = [-g * float(coef[i]) for i in members]
        for k, i in enumerate(members):
            if log_softmax:
                dx[i] = sum(dlogp[c] * ((1.0 if c == k else 0.0) - p[k]) for c in range(C))
            else:
                dx[i] = dlogp[k]  # (NLL3)
            if dtarget is not None:
                dtarget[i] = -g * (1 - smoothing) * w[k] * logp[k]  # (CE10)
    return dx, dtarget


def bce(x: np.ndarray, t: np.ndarray, w: np.ndarray, reduction: str) -> np.ndarray | float:
    """(BCE1) element by element; w already broadcast to x."""
    losses = np.empty(x.shape)
    for i in np.ndindex(x.shape):
        xi, ti = float(x[i]), float(t[i])
        log_x = max(math.log(xi), -100.0) if xi > 0 else -100.0
        log_1mx = max(math.log(1 - xi), -100.0) if xi < 1 else -100.0
        losses[i] = -float(w[i]) * (ti * log_x + (1 - ti) * log_1mx)
    return _reduce(losses, reduction, x.size)


def bce_grad(x, t, w, dloss, reduction):
    """(BCE2), (BCE3) with g of (RD4); the floor of x(1 − x) as PyTorch's single-precision
    10⁻¹²."""
    floor = float(np.float32(1e-12))
    dx, dt = np.empty(x.shape), np.empty(x.shape)
    for i in np.ndindex(x.shape):
        g = _g(dloss, reduction, i, x.size)
        xi, ti = float(x[i]), float(t[i])
        dx[i] = g * float(w[i]) * (xi - ti) / max(xi * (1 - xi), floor)
        dt[i] = -g * float(w[i]) * math.log(xi / (1 - xi))
    return dx, dt


def _g(dloss, reduction: str, i: tuple[int, ...], size: int) -> float:
    if reduction == "none":
        return float(np.asarray(dloss)[i])
    return float(dloss) / size if reduction == "mean" else float(dloss)  # (RD4)


def _softplus(v: float) -> float:
    return math.log1p(math.exp(-abs(v))) + max(v, 0.0)


def bce_logits(x, t, w, p, reduction):
    """(BCE4), (BCE5) element by element: −w·(p·t·log σ(x) + (1 − t)·log(1 − σ(x)))."""
    losses = np.empty(x.shape)
    for i in np.ndindex(x.shape):
        xi, ti = float(x[i]), float(t[i])
        log_sig = -_softplus(-xi)  # log σ(x)
        log_one_minus = -_softplus(xi)  # log(1 − σ(x))
        losses[i] = -float(w[i]) * (float(p[i]) * ti * log_sig + (1 - ti) * log_one_minus)
    return _reduce(losses, reduction, x.size)


def bce_logits_grad(x, t, w, p, dloss, reduction):
    """(BCE6), (BCE7) differentiated from the form above: ∂/∂x log σ = 1 − σ,
    ∂/∂x log(1 − σ) = −σ."""
    dx, dt = np.empty(x.shape), np.empty(x.shape)
    for i in np.ndindex(x.shape):
        g = _g(dloss, reduction, i, x.size)
        xi, ti, pi, wi = float(x[i]), float(t[i]), float(p[i]), float(w[i])
        sig = _sigmoid(xi)
        dx[i] = -g * wi * (pi * ti * (1 - sig) - (1 - ti) * sig)
        dt[i] = -g * wi * (pi * -_softplus(-xi) - -_softplus(xi))
    return dx, dt


def mse(pred, target, w, reduction):
    """(MSE4) with w broadcast; the mean weighted by Σ w."""
    losses = np.empty(pred.shape)
    for i in np.ndindex(pred.shape):
        losses[i] = float(w[i]) * (float(pred[i]) - float(target[i])) ** 2
    return _reduce(losses, reduction, float(np.sum(w)))


def mse_grad(pred, target, w, dloss, reduction):
    """(MSE5), (MSE6)."""
    total = float(np.sum(w))
    dpred = np.empty(pred.shape)
    for i in np.ndindex(pred.shape):
        if reduction == "none":
            g = float(np.asarray(dloss)[i])
        else:
            g = float(dloss) / (total if reduction == "mean" else 1.0)
        dpred[i] = g * 2 * float(w[i]) * (float(pred[i]) - float(target[i]))
    return dpred, -dpred
