"""Tensor: one NumPy or CuPy array, and the node of the graph that made it.

A Tensor holds its array as ``.data`` (never copied on the way in), ``requires_grad``,
``.grad`` (an array of the same shape, filled by ``backward``; None until then) and the
node that produced it (None for a leaf: data, or a Parameter). Operators (+, −, *, /, @,
indexing) and methods (reshape, transpose, sum, mean, …) call op pairs of
convprop.functional and record them (convprop.autograd.ops); ``backward`` runs the graph
(convprop.autograd.graph).
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop.autograd.grad_mode import is_grad_enabled
from convprop.autograd.graph import BackwardFn, Node, run_backward
from convprop.backend import Array, get_xp, is_array, to_device, to_host
from convprop.errors import DTypeError, ShapeError

HostArray = numpy.ndarray
"""A NumPy array (named here because Tensor's own ``numpy`` method hides the module)."""


def _check_data(op: str, data: Any) -> Array:
    if isinstance(data, Tensor):
        return data.data
    if not is_array(data):
        hint = "; call .numpy() on it first" if type(data).__module__.startswith("torch") else ""
        raise DTypeError(
            f"{op}: expected a NumPy or CuPy array, got {type(data).__module__}."
            f"{type(data).__name__}{hint}"
        )
    return data


class Tensor:
    """An array that records the ops applied to it, so that ``backward`` can run them back.

    Parameters
    ----------
    data : Array
        A NumPy or CuPy array (kept, not copied).
    requires_grad : bool
        Collect ∂L/∂self in ``.grad`` (only for floating dtypes).

    Examples
    --------
    >>> import numpy as np
    >>> x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    >>> loss = (x * x).sum()
    >>> loss.backward()
    >>> x.grad
    array([2., 4.])
    """

    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data: Array, requires_grad: bool = False) -> None:
        self._data = _check_data("tensor", data)
        self.grad: Array | None = None
        self._node: Node | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- the array ---------------------------------------------------------------------
    @property
    def data(self) -> Array:
        """The array itself (no copy); assigning replaces it without recording anything."""
        return self._data

    @data.setter
    def data(self, value: Array) -> None:
        self._data = _check_data("Tensor.data", value)

    @property
    def shape(self) -> tuple[int, ...]:
        shape = self._data.shape
        return shape if type(shape) is tuple else tuple(int(n) for n in shape)

    @property
    def dtype(self) -> Any:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return int(self._data.ndim)

    @property
    def device(self) -> str:
        """ "cpu" for a NumPy array, "cuda" for a CuPy array."""
        return "cpu" if isinstance(self._data, numpy.ndarray) else "cuda"

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def size(self, dim: int | None = None) -> Any:
        """The shape, or its entry ``dim`` (PyTorch's ``size``)."""
        return self.shape if dim is None else self.shape[dim]

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor; expected at least 1 dimension, got 0")
        return self.shape[0]

    def numpy(self) -> HostArray:
        """The values as a NumPy array (the array itself on the CPU, a copy from a GPU)."""
        return to_host(self._data)

    def item(self) -> Any:
        """The single value as a Python number."""
        if self._data.size != 1:
            raise ShapeError(
                f"item: only a one-element tensor has one value; expected 1 element, got "
                f"{self._data.size} (shape={self.shape})"
            )
        return self._data.reshape(()).item()

    def tolist(self) -> Any:
        return to_host(self._data).tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> HostArray:
        host = to_host(self._data)
        return host if dtype is None else host.astype(dtype)

    def __repr__(self) -> str:
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self._node is not None:
            extra = f", grad_fn={self._node.name}"
        body = numpy.array2string(to_host(self._data), separator=", ", prefix="tensor(")
        return f"tensor({body}{extra})"

    # -- the graph ---------------------------------------------------------------------
    @property
    def is_leaf(self) -> bool:
        """True for a tensor no recorded op made (data, or a Parameter)."""
        return self._node is None

    @property
    def grad_fn(self) -> Node | None:
        """The node that made this tensor (None for a leaf)."""
        return self._node

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place; only a floating leaf can need a gradient."""
        if requires_grad and self._data.dtype.kind not in "fc":
            raise DTypeError(
                f"requires_grad: only floating tensors have gradients; expected float32 or "
                f"float64, got {self._data.dtype} (shape={self.shape})"
            )
        if self._node is not None and not requires_grad:
            raise RuntimeError(
                "requires_grad: a tensor made by a recorded op cannot stop needing its "
                "gradient; expected a leaf, got the output of "
                + self._node.name
                + " (use .detach())"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> Tensor:
        """The same array as a new leaf that records nothing."""
        return Tensor(self._data)

    def backward(self, gradient: Any = None, *, retain_graph: bool = False) -> None:
        """Compute ∂L/∂leaf for every leaf that needs it, adding into its ``.grad``.

        Parameters
        ----------
        gradient : Tensor, Array or None
            ∂L/∂self; may be omitted for a one-element tensor (the loss), when it is 1.
        retain_graph : bool
            Keep the recorded caches for another backward through the same graph.

        Raises
        ------
        RuntimeError
            If the tensor does not need a gradient, or its graph was already released.
        ShapeError
            If ``gradient`` is omitted for a tensor of several elements, or has another
            shape.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not need a gradient; expected the result of ops "
                "on a Parameter or on a tensor with requires_grad=True, got a tensor that "
                "records nothing (was it computed under no_grad()?)"
            )
        xp = get_xp(self._data)
        if gradient is None:
            if self._data.size != 1:
                raise ShapeError(
                    f"backward: a gradient is implied only for a one-element loss; expected "
                    f"gradient= of shape {self.shape}, got None"
                )
            dy = xp.ones_like(self._data)
        else:
            dy = _check_data("backward", gradient)
            if tuple(dy.shape) != self.shape:
                raise ShapeError(
                    f"backward: gradient has the wrong shape; expected {self.shape}, got "
                    f"{tuple(dy.shape)}"
                )
            # a copy: the caller's array may be a leaf's .grad, which the backward adds into
            # while the graph may still read dy (a sum hands it on to both operands, GR2)
            dy = dy.astype(self.dtype, copy=True)
        run_backward(self, dy, retain_graph=retain_graph)

    def to(self, device: str) -> Tensor:
        """A leaf copy on ``device`` ("cpu" or "cuda"); records nothing."""
        return Tensor(to_device(self._data, device), requires_grad=self.requires_grad)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    # -- operators (each records its pair; see convprop.autograd.ops) -----------------------
    def __add__(self, other: Any) -> Tensor:
        return _ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _ops.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _ops.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops.div(other, self)

    def __neg__(self) -> Tensor:
        return _ops.neg(self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    def reshape(self, *shape: Any) -> Tensor:
        return _ops.reshape(self, *shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return _ops.flatten(self, start_dim, end_dim)

    def unsqueeze(self, dim: int) -> Tensor:
        return _ops.unsqueeze(self, dim)

    def squeeze(self, dim: int | None = None) -> Tensor:
        return _ops.squeeze(self, dim)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return _ops.transpose(self, dim0, dim1)

    def permute(self, *dims: Any) -> Tensor:
        return _ops.permute(self, *dims)

    @property
    def T(self) -> Tensor:  # noqa: N802 - PyTorch's name
        return _ops.permute(self, *reversed(range(self.ndim)))

    def sum(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _ops.sum(self, dim, keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _ops.mean(self, dim, keepdim)

    # -- comparisons and arg-max: values, not differentiable ----------------------------------
    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        index = self._data.argmax(axis=dim)
        if keepdim and dim is not None:
            index = get_xp(self._data).expand_dims(index, dim)
        return Tensor(get_xp(self._data).asarray(index))

    def _compare(self, other: Any, name: str) -> Tensor:
        value = other.data if isinstance(other, Tensor) else other
        return Tensor(get_xp(self._data).asarray(getattr(self._data, name)(value)))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, "__eq__")

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, "__ne__")

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, "__lt__")

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, "__le__")

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, "__gt__")

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, "__ge__")

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Wrap an array as a Tensor (no copy); lists and numbers become NumPy arrays.

    Parameters
    ----------
    data : Array, list, number or Tensor
        A NumPy or CuPy array is kept as it is (unless ``dtype`` asks for a cast).
    requires_grad : bool
        Make it a leaf that collects its gradient.
    dtype : dtype, optional

    Examples
    --------
    >>> import numpy as np
    >>> tensor(np.zeros((2, 3), dtype=np.float32)).shape
    (2, 3)
    """
    if isinstance(data, Tensor):
        data = data.data
    elif isinstance(data, (list, tuple, int, float, bool, numpy.generic)):
        data = numpy.asarray(data)
    array = _check_data("tensor", data)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return Tensor(array, requires_grad=requires_grad)


def as_array(value: Any, like: Array | None = None) -> Array:
    """The array of a Tensor; an array as is; a Python number as a 0-d array of ``like``'s dtype."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (int, float)) and not isinstance(value, bool) and like is not None:
        if isinstance(value, float) and like.dtype.kind not in "fc":
            return get_xp(like).asarray(value)  # int tensor * 0.5 is a float, as in PyTorch
        return get_xp(like).asarray(value, dtype=like.dtype)
    return _check_data("tensor op", value)


def record(
    name: str,
    labels: str,
    y: Array,
    cache: Any,
    inputs: tuple[Any, ...],
    backward: BackwardFn,
) -> Tensor:
    """Wrap an op's output; if an input needs a gradient (and recording is on), record a node.

    Parameters
    ----------
    name, labels : str
        The op and the equations of its backward.
    y : Array
        The forward output.
    cache : object
        The forward's cache, kept in the node for ``backward``.
    inputs : tuple
        The op's differentiable inputs: Tensors, or anything else (no gradient).
    backward : BackwardFn
        Returns one gradient per input.
    """
    out = Tensor(y)
    if not is_grad_enabled():
        return out
    needs = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
    if any(needs):
        out.requires_grad = True
        out._node = Node(name, labels, backward, cache, inputs, needs, tuple(y.shape))
    return out


from convprop.autograd import ops as _ops  # noqa: E402  (ops builds on Tensor)
