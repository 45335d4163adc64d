"""Code fingerprints: the ``ncutils`` code a module can run, and one hash of it.

A unit's key hashes its configuration and the fingerprint of the module that defines its kind
(:mod:`ncutils.book.engine.units`); a chapter's record hashes its notebook and the fingerprint of
what the notebook imports (:mod:`ncutils.book.engine.chapter_key`). Both ask this module, which reads
source files (it imports nothing it fingerprints).

**What a module can run.** Module ``m`` depends on every ``ncutils`` module it imports, at module
level or inside functions, and on what those depend on. Three rules keep that set as narrow as the
code allows and still sound (a change that can alter what ``m`` computes changes its fingerprint):

1. *A name depends on the module that defines it.* ``from ncutils.fewshot import ConvNet4`` depends
   on ``ncutils.fewshot.backbones``, where the package's ``__init__`` takes ``ConvNet4`` from, not on
   every module of the package. ``from ncutils import data`` followed by ``data.make_loader(...)``
   depends on ``ncutils.data.loading`` the same way; a package bound to a name that is used other
   than as ``pkg.attribute`` (passed on, or read with ``getattr``) depends on the whole package.
2. *A package's own code counts, its re-exports do not.* Importing ``ncutils.fewshot.backbones``
   executes ``ncutils/__init__.py`` and ``ncutils/fewshot/__init__.py``: their statements other than
   imports, ``__all__`` and docstrings are part of the fingerprint, the modules they import only when
   the code uses them (rule 1).
3. *The engine's declarations compute nothing.* A kind module names its kind with
   :func:`ncutils.book.engine.units.kind` and types its dependencies as
   :class:`~ncutils.book.engine.units.Unit`; those two names (:data:`DECLARATIONS`) do not bring the
   engine into the fingerprint. The engine reads and writes stored values for a kind through the
   context it is handed, and never changes a number; any other engine name a kind imports counts.

Comments, docstrings and layout never count (syntax trees are hashed without docstrings). The
versions of the numerical libraries (:data:`VERSIONED`) count too: an upgraded torch recomputes.

What a change to each library package recomputes, for the kinds of :mod:`ncutils.book.experiments`
(``tests/test_units.py`` checks the rows marked *checked* by editing copies of the files):

=====================================  =====================================================================
a change to                            changes the keys of
=====================================  =====================================================================
``metrics``                            every kind (NC metrics are measured everywhere)
``reference``                          ``nc_surrogates``, ``nc1_cost``
``models``, ``runtime``                every kind that builds or runs a network
``features``, ``probe``, ``training``  the kinds that train or read networks (all but the metric checks)
``pretrain/*``                         ``pretrain`` and every kind that reads a source model (*checked*:
                                       ``pretrain/adversarial.py``)
``finetune/*``                         ``finetune``, ``param_percentages`` only (*checked*:
                                       ``finetune/prefix_cache.py``)
``fewshot/episodes.py``                ``fewshot_eval`` only (*checked*)
``fewshot/backbones.py``               every kind that builds a network
``transferability/scores.py``          ``transfer_scores`` only (*checked*)
``data/*``, ``transforms``, ``hub``    the kinds that load data or public networks
``book/datasets.py``, ``networks.py``  every kind that reads data or a network
``book/experiments/<module>.py``       the kinds it defines and the units that depend on theirs (*checked*:
                                       ``probing.py`` leaves ``finetune`` and ``pretrain`` alone)
``book/engine``, ``runner``, pages     nothing
``book/engine/dryrun.py``              the dry-run units only, through their rewritten configurations (the
                                       dry run is a transform of units, not code a kind runs)
=====================================  =====================================================================
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DECLARATIONS", "VERSIONED", "closure", "dependencies", "fingerprint", "reading", "source_digest",
           "used_by"]

#: Libraries whose versions enter every fingerprint: they change the numbers a unit computes.
VERSIONED = ("torch", "torchvision", "timm", "numpy", "scipy", "sklearn")

#: ``(module, name)`` pairs a kind module may import without the module entering its fingerprint.
DECLARATIONS = frozenset({("ncutils.book.engine.units", "kind"), ("ncutils.book.engine.units", "Unit")})

_ROOT = Path(__file__).resolve().parents[3]  # the folder holding the ncutils package
_TOP = "ncutils"


# --------------------------------------------------------------------------- modules as files
@functools.cache
def _file(module: str) -> Path | None:
    """The source file of module ``module``, or ``None`` when no module has that name.

    ``ncutils`` modules are found under :data:`_ROOT` without importing anything; a module outside it (a
    unit kind of a user's own, registered with :func:`~ncutils.book.engine.units.kind`) where Python finds
    it: its own code counts, and the ``ncutils`` code it uses, but not other modules it imports."""
    parts = module.split(".")
    if parts[0] != _TOP:
        loaded = sys.modules.get(module)
        origin = getattr(loaded, "__file__", None)
        if origin is None:
            try:
                spec = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                return None
            origin = spec.origin if spec else None
        return Path(origin) if origin and origin.endswith(".py") else None
    base = _ROOT.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_package(module: str) -> bool:
    path = _file(module)
    return path is not None and path.name == "__init__.py"


@functools.cache
def _tree(module: str) -> ast.Module:
    return ast.parse(_file(module).read_text(encoding="utf-8"))


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(source: str) -> str:
    """Hash of Python ``source``'s syntax tree without docstrings: comments, docstrings and layout do not
    count, code does."""
    return hashlib.sha256(ast.dump(_strip_docstrings(ast.parse(source))).encode()).hexdigest()


@functools.cache
def _digest(module: str) -> str:
    return source_digest(_file(module).read_text(encoding="utf-8"))


def _is_all(stmt: ast.stmt) -> bool:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else \
        [stmt.target] if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) else []
    return any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets)


@functools.cache
def _own_digest(package: str) -> str:
    """Hash of a package ``__init__``'s own statements: not its imports, ``__all__`` or docstring."""
    tree = _strip_docstrings(ast.parse(_file(package).read_text(encoding="utf-8")))
    tree.body = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom)) and not _is_all(s)]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


# --------------------------------------------------------------------------- names to modules
def _absolute(node: ast.ImportFrom, module: str) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if _is_package(module) else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


@functools.cache
def _bindings(module: str) -> dict[str, tuple[str, str | None]]:
    """Names that ``module`` binds at module level by importing ``ncutils`` code: ``name -> (module, attr)``
    (``attr`` ``None`` when the name is the module itself)."""
    out: dict[str, tuple[str, str | None]] = {}
    for node in _tree(module).body:
        if isinstance(node, ast.ImportFrom):
            base = _absolute(node, module)
            if base.split(".")[0] != _TOP:
                continue
            for a in node.names:
                if a.name != "*":
                    out[a.asname or a.name] = (base, a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == _TOP and a.asname:
                    out[a.asname] = (a.name, None)
    return out


def _target(module: str, name: str, seen: frozenset = frozenset()) -> tuple[str, bool]:
    """Where ``module.name`` lives: ``(submodule, True)`` when it is a module, else ``(defining module,
    False)``, following re-exports (``from .backbones import ConvNet4`` in a package ``__init__``)."""
    sub = f"{module}.{name}"
    if _file(sub) is not None:
        return sub, True
    if (module, name) in seen or _file(module) is None:
        return module, False
    bound = _bindings(module).get(name)
    if bound is None:
        return module, False
    origin, attr = bound
    if attr is None:
        return origin, True
    return _target(origin, attr, seen | {(module, name)})


def _attribute_uses(tree: ast.Module, name: str) -> set[str] | None:
    """The attributes read from ``name`` in ``tree`` (``name.attr``), or ``None`` when ``name`` is also
    used otherwise (passed on, assigned, read with ``getattr``)."""
    attrs: set[str] = set()
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
            parent = parents.get(id(node))
            if isinstance(parent, ast.Attribute) and parent.value is node:
                attrs.add(parent.attr)
            else:
                return None
    return attrs


def _module_dependencies(module: str, bound_as: str | None, tree: ast.Module) -> set[str]:
    """What using module ``module`` (bound to the name ``bound_as`` in ``tree``, if any) depends on."""
    if not _is_package(module) or bound_as is None:
        return {module}
    attrs = _attribute_uses(tree, bound_as)
    if attrs is None:
        return {module}  # the whole package: its __init__ and everything it imports
    out: set[str] = set()
    for attr in attrs:
        target, is_module = _target(module, attr)
        out |= _module_dependencies(target, None, tree) if is_module and _is_package(target) else {target}
    return out


def _uses(tree: ast.Module, module: str | None, declarations: bool) -> set[str]:
    """The ``ncutils`` modules the code of ``tree`` (module ``module``, or a script) uses directly (rule 1)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] != _TOP:
                    continue
                # `import ncutils.x.y` binds `ncutils`: count the named module whole
                out |= _module_dependencies(a.name, a.asname, tree) if a.asname else {a.name}
        elif isinstance(node, ast.ImportFrom):
            if node.level and module is None:
                raise ValueError("a script cannot import relatively; name the ncutils module.")
            base = _absolute(node, module) if node.level else node.module or ""
            if base.split(".")[0] != _TOP:
                continue
            for a in node.names:
                if a.name == "*":
                    out.add(base)
                    continue
                target, is_module = _target(base, a.name)
                if not declarations and ((base, a.name) in DECLARATIONS or (target, a.name) in DECLARATIONS):
                    continue
                out |= _module_dependencies(target, a.asname or a.name, tree) if is_module else {target}
    return {m for m in out if _file(m) is not None}


@functools.cache
def dependencies(module: str, *, declarations: bool = False) -> frozenset[str]:
    """The ``ncutils`` modules ``module``'s code uses directly (rule 1); the modules of the engine's
    :data:`DECLARATIONS` only when ``declarations`` (an import graph, not a fingerprint)."""
    return frozenset(_uses(_tree(module), module, declarations) - {module})


def used_by(source: str) -> frozenset[str]:
    """The ``ncutils`` modules a script or notebook's code (``source``) uses directly (rule 1)."""
    return frozenset(_uses(ast.parse(source), None, False))


def _packages_above(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.cache
def closure(module: str) -> tuple[str, ...]:
    """``module`` and every module it depends on, directly or through others (sorted)."""
    if _file(module) is None:
        raise ValueError(f"no ncutils module {module!r}.")
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(dependencies(m) - seen)
    return tuple(sorted(seen))


def _library_versions(libraries: tuple[str, ...] = VERSIONED) -> str:
    out = []
    for lib in libraries:
        try:
            version = importlib.import_module(lib).__version__
        except ImportError:
            version = "absent"
        out.append(f"{lib}={version};")
    return "".join(out)


@functools.cache
def fingerprint(*modules: str, libraries: tuple[str, ...] = VERSIONED) -> str:
    """Hash of the code ``modules`` can run (their closures, rules 1-3) and of the versions of ``libraries``
    (default: the numerical libraries a unit may run, :data:`VERSIONED`): 16 hex digits."""
    h = hashlib.sha256()
    code = sorted({m for module in modules for m in closure(module)})
    packages = sorted({p for m in code for p in _packages_above(m)} - set(code))
    for m in code:
        h.update(f"{m}:{_digest(m)};".encode())
    for p in packages:
        h.update(f"{p}/own:{_own_digest(p)};".encode())
    h.update(_library_versions(libraries).encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def reading(root: str | Path) -> Iterator[None]:
    """Fingerprint the ``ncutils`` package found in folder ``root`` (a copy or another checkout) inside
    this context: e.g. the keys a plan's units would have after an edit, without importing the copy."""
    global _ROOT
    cached = (_file, _tree, _digest, _own_digest, _bindings, dependencies, closure, fingerprint)
    saved = _ROOT
    for f in cached:
        f.cache_clear()
    _ROOT = Path(root).resolve()
    try:
        yield
    finally:
        _ROOT = saved
        for f in cached:
            f.cache_clear()
