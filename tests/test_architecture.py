"""The architecture, checked by parsing every module's imports (ast, nothing is imported).

(i)  No module in convprop.functional imports numpy or cupy (ops use ``xp = get_xp(...)``),
     and backend.py is the only module that imports cupy.
(ii) Dependencies point one way, down the layer table below: a module may import only
     modules of its own layer or of lower layers. functional additionally imports nothing
     of convprop but backend, _shapes, errors and functional itself; optim sees only
     nn.parameter of nn.
(iii) The import graph of convprop's modules (every file a node, the packages' __init__ and
     convprop.io's modules included; imports inside functions count) has no cycles: the
     command line (cli) is imported by no module, and convprop.io's modules import one
     another only downward in IO_ORDER.
(iv) convprop._native (the compiled kernels) imports nothing of convprop above layer 0, and
     only its _compiled module names the compiled extension modules; other modules reach the
     kernels through its dispatch: no use of its switch (serves, enabled...), and a family
     module's kernel is called only inside a function marked ``@_native.twin`` (the
     compiled twin of an op's NumPy reference) or a helper that only twins call, the
     try-form kernels of TRY_FORM_KERNELS excepted.

Modules that do not exist yet are simply absent from the scan; a new top-level module
must be given a layer here before it can pass.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import convprop

PACKAGE_DIR = Path(convprop.__file__).resolve().parent

LAYERS: dict[str, int] = {
    # 0: the array module, the error types, shape arithmetic, the compiled kernels
    "backend": 0, "errors": 0, "_shapes": 0, "_native": 0, "_blas": 0, "process": 0,
    # 1: pure op pairs, and the numerical checks of their gradients
    "functional": 1, "finite_differences": 1,
    # 2: the recorded graph over the pairs (Tensor, Function)
    "autograd": 2,
    # 3: stateful modules, and the architectures built from them
    "nn": 3, "models": 3,
    # 4: update rules
    "optim": 4,
    # 5: datasets and batching; model files and checkpoints (the loop below writes them),
    #    convprop.io's modules ordered among themselves by IO_ORDER
    "data": 5, "io": 5,
    # 6: the training loop and what it reports; data-parallel training over MPI (fit uses it)
    "train": 6, "model_check": 6, "plots": 6, "distributed": 6,
    "grad_norms": 6, "report": 6,  # the gradient norms fit records; the run's report
    # 7: the command line and its commands
    "cli": 7, "app": 7, "app_checks": 7, "explain": 7, "explain_graph": 7, "bench": 7,
    "bench_nets": 7, "bench_worker": 7, "bench_processes": 7,
}  # fmt: skip
ROOT_LAYER = max(LAYERS.values()) + 1  # convprop/__init__.py re-exports the public API

IO_ORDER = (
    "atomic", "file_format", "architecture", "model_files", "weights", "checkpoints", "run_info"
)  # fmt: skip
"""convprop.io's modules, each importing only the ones before it (the package __init__
re-exports them all)."""

KNOWN_CYCLES: tuple[frozenset[str], ...] = (
    # Tensor's operator methods come from ops, which builds on Tensor (a bottom import)
    frozenset({"convprop.autograd.tensor", "convprop.autograd.ops"}),
    # F.pad/F.interpolate live in functional_spatial, which calls back into F in a function
    frozenset({"convprop.nn.functional", "convprop.nn.functional_spatial"}),
    # Module.summary() imports summary, which walks Modules (import inside the method)
    frozenset({"convprop.nn.module", "convprop.nn.summary"}),
    # the registry imports convprop.nn in a function, so that the built-in layers are known
    frozenset({"convprop.nn", "convprop.nn.registry"}),
)
"""Cycles that predate the acyclic-graph check, each through an import inside a function or
at the bottom of a module (issue 18). The check fails on any other cycle, and when one of
these disappears (remove it here then): this list only shrinks."""

FUNCTIONAL_MAY_IMPORT = (
    "convprop.backend", "convprop._shapes", "convprop.errors", "convprop._native"
)  # fmt: skip

NATIVE_MAY_IMPORT = (
    "convprop._native", "convprop.backend", "convprop.errors", "convprop._shapes", "convprop._blas"
)  # fmt: skip
"""What convprop._native's modules may import of convprop: nothing above layer 0."""

NATIVE_INTERNALS = frozenset(
    {"serves", "serves_complex", "enabled", "turned_off", "parallel", "threads_for", "Twin"}
)
"""convprop._native's switch and thread split: for its own modules only. Outside it, code
reaches the kernels through the dispatch (``_native.accelerated``, ``_native.twin``) and
asks ``_native.runs_compiled`` (cost models) and ``_native.disabled`` (tests, benchmarks)."""

TRY_FORM_KERNELS = frozenset({("products", "add_products")})
"""Family kernels that say whether they did the work (BLAS is known to take a call only by
asking it), called directly by the op that falls back to NumPy when they decline."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(path: Path) -> list[str]:
    """Every module named by an import statement anywhere in the file (functions too),
    relative imports resolved; ``from pkg import name`` also yields ``pkg.name``."""
    module = _module_name(path)
    package = module if _is_package(path) else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
            found.extend(names)
            # "from convprop import errors" imports the submodule, not the root package
            if not (names and all(_is_source_module(name) for name in names)):
                found.append(base)
    return found


def _convprop_modules() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


MODULES = _convprop_modules()
IDS = [_module_name(path) for path in MODULES]


def _is_source_module(name: str) -> bool:
    """Whether ``name`` (convprop.x.y) is a module or package of the source tree."""
    if not name.startswith("convprop."):
        return False
    relative = Path(*name.split(".")[1:])
    return (PACKAGE_DIR / relative).with_suffix(".py").is_file() or (
        PACKAGE_DIR / relative / "__init__.py"
    ).is_file()


def _internal_modules(path: Path) -> set[str]:
    """The convprop modules this file imports (``from pkg import Class`` counts as pkg)."""
    names = set()
    for name in _imports(path):
        if name == "convprop" or _is_source_module(name):
            names.add(name)
    return names


def _layer(module: str) -> int:
    if module == "convprop":
        return ROOT_LAYER
    top = module.split(".")[1]
    if top not in LAYERS:
        raise AssertionError(
            f"{module}: no layer for convprop.{top}; add it to LAYERS in tests/test_architecture.py"
        )
    return LAYERS[top]


def test_the_scan_sees_the_conv_core() -> None:
    assert "convprop.functional.conv2d" in IDS
    assert "convprop.backend" in IDS
    # the resolver understands absolute, relative and nested imports
    conv2d = PACKAGE_DIR / "functional" / "conv2d.py"
    assert "convprop.functional.conv2d_direct" in _internal_modules(conv2d)
    fft = PACKAGE_DIR / "functional" / "conv2d_fft.py"
    assert "scipy.fft" in _imports(fft)  # imported inside a function


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if _module_name(p).startswith("convprop.functional")],
    ids=_module_name,
)
def test_functional_never_imports_numpy_or_cupy(path: Path) -> None:
    forbidden = [
        name for name in _imports(path) if name.split(".")[0] in {"numpy", "cupy", "cupyx"}
    ]
    assert not forbidden, f"{_module_name(path)} imports {forbidden}; use xp = get_xp(...)"


def test_only_backend_imports_cupy() -> None:
    importers = {}
    for path in MODULES:
        cupy = [name for name in _imports(path) if name.split(".")[0] in {"cupy", "cupyx"}]
        if cupy:
            importers[_module_name(path)] = cupy
    assert set(importers) <= {"convprop.backend"}, f"only convprop.backend may: {importers}"


@pytest.mark.parametrize("path", MODULES, ids=IDS)
def test_dependencies_point_down_the_layer_table(path: Path) -> None:
    module = _module_name(path)
    own = _layer(module)
    upward = sorted(name for name in _internal_modules(path) if _layer(name) > own)
    assert not upward, f"{module} (layer {own}) imports higher layers: {upward}"


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if _module_name(p).startswith("convprop.functional")],
    ids=_module_name,
)
def test_functional_imports_only_backend_shapes_errors_and_itself(path: Path) -> None:
    outside = sorted(
        name
        for name in _internal_modules(path)
        if not name.startswith(("convprop.functional", *FUNCTIONAL_MAY_IMPORT))
    )
    assert not outside, f"{_module_name(path)} imports {outside}"


@pytest.mark.parametrize(
    "path", [p for p in MODULES if _module_name(p).startswith("convprop.optim")], ids=_module_name
)
def test_optim_sees_only_the_parameter_of_nn(path: Path) -> None:
    nn = sorted(
        name
        for name in _internal_modules(path)
        if name == "convprop.nn" or name.startswith("convprop.nn.")
    )
    assert set(nn) <= {"convprop.nn.parameter"}, f"{_module_name(path)} imports {nn}"


def _import_graph() -> dict[str, set[str]]:
    """Each convprop module and the convprop modules it imports (itself excluded)."""
    return {_module_name(path): _internal_modules(path) - {_module_name(path)} for path in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Kosaraju: a depth-first
    finishing order on the graph, then components on the reversed graph), found without
    recursion."""
    order: list[str] = []
    seen: set[str] = set()
    for start in sorted(graph):
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(sorted(graph[start])))]
        while stack:
            node, targets = stack[-1]
            target = next((t for t in targets if t in graph and t not in seen), None)
            if target is None:
                order.append(node)
                stack.pop()
            else:
                seen.add(target)
                stack.append((target, iter(sorted(graph[target]))))
    reverse: dict[str, set[str]] = {node: set() for node in graph}
    for node, targets in graph.items():
        for target in targets & set(graph):
            reverse[target].add(node)
    components, assigned = [], set()
    for start in reversed(order):
        if start in assigned:
            continue
        component, frontier = set(), [start]
        while frontier:
            node = frontier.pop()
            if node not in assigned:
                assigned.add(node)
                component.add(node)
                frontier.extend(reverse[node] - assigned)
        if len(component) > 1:
            components.append(frozenset(component))
    return components


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d", "e"}}
    assert _cycles(graph) == [frozenset({"a", "b", "c"})]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions_and_io_modules() -> None:
    graph = _import_graph()
    assert "convprop.app" in graph["convprop.cli"]  # imported inside cmd_train
    assert {f"convprop.io.{name}" for name in IO_ORDER} <= graph["convprop.io"]


def test_the_import_graph_has_no_cycles() -> None:
    cycles = set(_cycles(_import_graph()))
    new = sorted(sorted(cycle) for cycle in cycles - set(KNOWN_CYCLES))
    assert not new, f"import cycles: {new}; make the dependency point one way"
    gone = sorted(sorted(cycle) for cycle in set(KNOWN_CYCLES) - cycles)
    assert not gone, f"these cycles are gone: {gone}; remove them from KNOWN_CYCLES"


def test_no_module_imports_the_command_line() -> None:
    importers = sorted(
        module
        for module, imported in _import_graph().items()
        if module != "convprop.cli" and "convprop.cli" in imported
    )
    assert not importers, f"{importers} import convprop.cli; the command line imports them"


def test_io_modules_import_one_another_downward() -> None:
    found = sorted(
        _module_name(path).rpartition(".")[2]
        for path in MODULES
        if _module_name(path).startswith("convprop.io.")
    )
    assert found == sorted(IO_ORDER), "give every convprop.io module its place in IO_ORDER"
    for position, name in enumerate(IO_ORDER):
        imported = _internal_modules(PACKAGE_DIR / "io" / f"{name}.py")
        upward = sorted(
            module
            for module in imported
            if module == "convprop.io"
            or (module.startswith("convprop.io.") and module[12:] in IO_ORDER[position:])
        )
        assert not upward, f"convprop.io.{name} imports {upward}, not below it in IO_ORDER"


# ------------------------------------------------------------- the compiled kernels (iv)

NATIVE_DIR = PACKAGE_DIR / "_native"
COMPILED_NAME = re.compile(r"^convprop\._native\._(?!compiled$)\w+$")
"""A compiled extension module: convprop._native._<family>."""


def _native_families() -> frozenset[str]:
    return frozenset(path.stem for path in NATIVE_DIR.glob("*.py") if not path.stem.startswith("_"))


def test_the_native_scan_sees_the_dispatch() -> None:
    assert {"elementwise", "im2col", "products", "winograd"} <= _native_families()
    activation = PACKAGE_DIR / "functional" / "activation.py"
    assert "convprop._native.elementwise" in _internal_modules(activation)
    assert COMPILED_NAME.match("convprop._native._direct")
    assert not COMPILED_NAME.match("convprop._native._compiled")
    assert not COMPILED_NAME.match("convprop._native.direct")
    # a kernel called outside a twin is found; one called inside a twin is not
    source = (
        "from convprop import _native\n"
        "from convprop._native import winograd as w\n"
        "def helper(x):\n    return w.winograd_dx(x)\n"
        "@_native.twin(arrays='x')\n"
        "def ok(x):\n    return helper(w.winograd_input(x))\n"
        "def bad(x):\n    return w.winograd_dy(x) if _native.serves(x) else x\n"
        "def shared(x):\n    return w.winograd_output(x)\n"
        "def uses(x):\n    return shared(x) + ok(x)\n"
    )
    found = _kernel_calls_outside_twins(ast.parse(source))
    assert found == ["w.winograd_dy", "w.winograd_output"]
    assert _native_internals_used(ast.parse(source)) == ["serves"]


@pytest.mark.parametrize("path", sorted(NATIVE_DIR.glob("*.py")), ids=lambda p: _module_name(p))
def test_native_imports_nothing_above_layer_0(path: Path) -> None:
    outside = sorted(
        name for name in _internal_modules(path) if not name.startswith(NATIVE_MAY_IMPORT)
    )
    assert not outside, f"{_module_name(path)} imports {outside}; _native sits at layer 0"


def _compiled_names(path: Path) -> list[str]:
    """Compiled extension modules named by an import or a string constant in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    strings = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    return sorted(name for name in [*_imports(path), *strings] if COMPILED_NAME.match(name))


@pytest.mark.parametrize("path", MODULES, ids=IDS)
def test_only_native_compiled_names_the_compiled_modules(path: Path) -> None:
    if _module_name(path) == "convprop._native._compiled":
        assert _compiled_names(path), "the scan no longer sees the compiled modules' names"
        return
    named = _compiled_names(path)
    assert not named, (
        f"{_module_name(path)} names {named}; only convprop._native._compiled imports the "
        "compiled code (its family modules call kernels.<name>)"
    )


def _native_aliases(tree: ast.AST) -> tuple[set[str], dict[str, str]]:
    """The names under which a module sees convprop._native itself, and its family modules
    (local name -> family)."""
    packages: set[str] = set()
    families: dict[str, str] = {}
    known = _native_families()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "convprop":
            packages |= {a.asname or a.name for a in node.names if a.name == "_native"}
        elif isinstance(node, ast.ImportFrom) and node.module == "convprop._native":
            for alias in node.names:
                if alias.name in known:
                    families[alias.asname or alias.name] = alias.name
    return packages, families


def _native_internals_used(tree: ast.AST) -> list[str]:
    """The switch and thread split of convprop._native that a module uses."""
    packages, _ = _native_aliases(tree)
    used = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "convprop._native":
            used += [a.name for a in node.names if a.name in NATIVE_INTERNALS]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in packages
            and node.attr in NATIVE_INTERNALS
        ):
            used.append(node.attr)
    return sorted(used)


def _is_twin(function: ast.FunctionDef) -> bool:
    """Marked ``@_native.twin(...)``: the compiled path of an op."""
    for decorator in function.decorator_list:
        call = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(call, ast.Attribute) and call.attr == "twin":
            return True
    return False


def _twin_side(tree: ast.Module) -> set[str]:
    """The module's functions that make up compiled paths: the twins, and the helpers that
    only they (or other such helpers) refer to."""
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    owners: dict[str, set[str | None]] = {name: set() for name in functions}
    for node in tree.body:
        owner = node.name if isinstance(node, ast.FunctionDef) else None
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id in functions and sub.id != owner:
                owners[sub.id].add(owner)
    side = {name for name, function in functions.items() if _is_twin(function)}
    grown = True
    while grown:
        helpers = {name for name, by in owners.items() if by and by <= side} - side
        side |= helpers
        grown = bool(helpers)
    return side


def _kernel_calls_outside_twins(tree: ast.Module) -> list[str]:
    """Calls of a family module's function made outside every compiled path."""
    _, families = _native_aliases(tree)
    side = _twin_side(tree)
    found: list[str] = []

    def visit(node: ast.AST, in_twin: bool) -> None:
        if isinstance(node, ast.FunctionDef):
            in_twin = in_twin or node.name in side
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in families
            and (families[node.func.value.id], node.func.attr) not in TRY_FORM_KERNELS
            and not in_twin
        ):
            found.append(f"{node.func.value.id}.{node.func.attr}")
        for child in ast.iter_child_nodes(node):
            visit(child, in_twin)

    visit(tree, False)
    return found


OUTSIDE_NATIVE = [p for p in MODULES if not _module_name(p).startswith("convprop._native")]


@pytest.mark.parametrize("path", OUTSIDE_NATIVE, ids=_module_name)
def test_ops_reach_the_kernels_only_through_the_dispatch(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    internals = _native_internals_used(tree)
    assert not internals, (
        f"{_module_name(path)} uses convprop._native.{internals}; an op decides between its "
        "compiled and NumPy code in one place: @_native.accelerated(twin) on its reference"
    )
    calls = _kernel_calls_outside_twins(tree)
    assert not calls, (
        f"{_module_name(path)} calls {calls} outside a compiled twin; mark the compiled path "
        "@_native.twin(...) and dispatch to it with @_native.accelerated"
    )


def test_tests_mirror_the_package() -> None:
    """Each folder of tests/ holds the tests of one part of src/convprop (a package or a
    module of that name; docs/ the documentation's own tests)."""
    tests = Path(__file__).resolve().parent
    folders = sorted(
        path.name for path in tests.iterdir() if path.is_dir() and not path.name.startswith(".")
    )
    folders = [name for name in folders if name != "__pycache__"]
    assert folders, "tests/ has no sub-folders"
    parts = {path.stem for path in PACKAGE_DIR.iterdir() if path.suffix == ".py" or path.is_dir()}
    unknown = [name for name in folders if name not in parts | {"docs"}]
    assert not unknown, f"tests/{unknown} mirror nothing in src/convprop"
    assert not list(tests.rglob("__init__.py")), "tests/ stays without __init__.py files"
