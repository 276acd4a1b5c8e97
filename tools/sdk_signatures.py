"""The Azure ML SDK v1's public signatures, read from its wheels, as data (issue 14).

    python3 tools/sdk_signatures.py                    # download the wheels, write the table and the doc
    python3 tools/sdk_signatures.py --wheels DIR       # the same from wheels already downloaded into DIR
    python3 tools/sdk_signatures.py --markdown         # only rewrite docs/azureml-compat.md from the table
    python3 tools/sdk_signatures.py --sync-differences # bring the intended differences in line with localpipe

The wheels are downloaded with ``python -m pip download --no-deps`` into a temporary folder and read as
zip files: nothing of the SDK is installed or imported. Their sources are parsed with ``ast``; each public
name of ``SURFACE`` (and of localpipe/compat/names.py, the ``azureml`` names localpipe maps) is followed
through ``from x import y`` chains, ``import`` and plain assignments to where it is defined. For a class,
its constructor's parameters and its public members (methods, properties, static and class methods,
class attributes, the public attributes its ``__init__`` sets), inherited ones included (through the
bases found in the same sources), are recorded; for a callable, its exact parameter list.

Besides the names a user imports, ``AzureBlobDatastore`` is read: nobody imports it, but it is what
``ws.get_default_datastore()`` returns (``upload_files``, ``download``, ``path``).

The table, ``tests/data/azureml_sdk_signatures.json``, is what ``tests/test_sdk_signatures.py`` compares
localpipe with; it never downloads anything. ``docs/azureml-compat.md`` is made from the table, localpipe
(through names.py) and ``tests/data/azureml_intended_differences.json`` by ``compat_markdown()``; the test
suite checks that the committed doc is what it would write.

azureml-dataset-runtime is not read: its 1.x wheels hold no module (the dataset classes, ``Dataset``,
``FileDataset``, ``TabularDataset``, ``OutputFileDatasetConfig``, ``DatasetConsumptionConfig``, live in
azureml-core's ``azureml/data/`` and ``azureml/core/dataset.py``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "tests" / "data" / "azureml_sdk_signatures.json"
DIFFERENCES = REPO / "tests" / "data" / "azureml_intended_differences.json"
DOC = REPO / "docs" / "azureml-compat.md"
NAMES = REPO / "localpipe" / "compat" / "names.py"

# The distributions read, with the versions asked of pip (the newest 1.x at or above the one measured).
WHEELS: dict[str, str] = {
    "azureml-core": ">=1.61,<2",
    "azureml-pipeline-core": ">=1.62,<2",
    "azureml-pipeline-steps": ">=1.62,<2",
    "azureml-train-core": ">=1.62,<2",  # azureml.train.hyperdrive
    "azureml-widgets": ">=1.62,<2",
    "azureml-telemetry": ">=1.61,<2",  # set_diagnostics_collection, which the framework samples call
    "azureml-opendatasets": ">=1.55,<2",  # Diabetes, which the first-experiment tutorial reads
}

# The public names a pipeline user meets: those of localpipe/compat/names.py (added when the table is
# made) and those issue 14 names. The first module that lists a name is where the table files it.
SURFACE: dict[str, list[str]] = {
    "azureml.core": [
        "ComputeTarget",
        "Dataset",
        "Datastore",
        "Environment",
        "Experiment",
        "Model",
        "Run",
        "RunConfiguration",
        "ScriptRunConfig",
        "VERSION",
        "Workspace",
    ],
    "azureml.core.compute": ["AmlCompute", "ComputeTarget"],
    "azureml.core.conda_dependencies": ["CondaDependencies"],
    "azureml.core.runconfig": [
        "DEFAULT_CPU_IMAGE",
        "DEFAULT_GPU_IMAGE",
        "DockerConfiguration",
        "RunConfiguration",
    ],
    "azureml.data": ["FileDataset", "OutputFileDatasetConfig", "TabularDataset"],
    "azureml.data.azure_storage_datastore": ["AzureBlobDatastore"],
    "azureml.data.data_reference": ["DataReference"],
    "azureml.data.datapath": ["DataPath", "DataPathComputeBinding"],
    "azureml.data.dataset_consumption_config": ["DatasetConsumptionConfig"],
    "azureml.exceptions": ["AzureMLException", "ComputeTargetException", "UserErrorException"],
    "azureml.pipeline.core": [
        "Module",
        "ModuleVersion",
        "ModuleVersionDescriptor",
        "Pipeline",
        "PipelineData",
        "PipelineParameter",
        "PipelineRun",
        "StepRun",
        "StepSequence",
    ],
    "azureml.pipeline.core.graph": ["InputPortDef", "OutputPortDef", "ParamDef"],
    "azureml.pipeline.steps": ["CommandStep", "ModuleStep", "PythonScriptStep"],
    "azureml.widgets": ["RunDetails"],
}

# Decorators that make a function something else than a method.
KIND_DECORATORS = {"staticmethod": "staticmethod", "classmethod": "classmethod"}
PARAMETER_KINDS = {
    "posonly": "positional-only",
    "arg": "positional-or-keyword",
    "vararg": "var-positional",
    "kwonly": "keyword-only",
    "kwarg": "var-keyword",
}


# -- reading the wheels -------------------------------------------------------------------------------


def download(dest: Path) -> list[Path]:
    """The wheels of ``WHEELS``, downloaded by pip into ``dest`` (no dependencies)."""
    specs = [name + spec for name, spec in WHEELS.items()]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--dest", str(dest), *specs],
        check=True,
    )
    return sorted(dest.glob("*.whl"))


def wheel_info(path: Path) -> dict:
    """Name, version, file name and SHA-256 of a wheel, from its file name and bytes."""
    name, version = path.name.split("-")[:2]
    return {
        "distribution": name.replace("_", "-"),
        "version": version,
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def read_sources(wheels: list[Path]) -> dict[str, str]:
    """Module name -> source text, for every ``.py`` file of the wheels (a package is its ``__init__``)."""
    sources: dict[str, str] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if not name.endswith(".py") or ".dist-info/" in name or ".data/" in name:
                    continue
                parts = name[: -len(".py")].split("/")
                if parts[-1] == "__init__":
                    parts.pop()
                sources[".".join(parts)] = archive.read(name).decode("utf-8-sig")
    return sources


# -- following names through the sources --------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """What a name is bound to: a class or function (``node``) defined in ``module``, a module, or a value."""

    what: str  # "class", "function", "module", "value", "unknown"
    module: str
    node: ast.AST | None = None
    text: str = ""  # a value's source; for "unknown", what could not be followed

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.node.name}" if self.node is not None and self.what != "value" else self.module


class Sources:
    """The parsed modules of the wheels, and the names each binds at its top level."""

    def __init__(self, sources: dict[str, str]):
        self.sources = sources
        self._trees: dict[str, ast.Module] = {}
        self._bindings: dict[str, dict[str, ast.AST]] = {}

    def tree(self, module: str) -> ast.Module | None:
        if module not in self.sources:
            return None
        if module not in self._trees:
            self._trees[module] = ast.parse(self.sources[module])
        return self._trees[module]

    def is_package(self, module: str) -> bool:
        return any(name.startswith(module + ".") for name in self.sources)

    def absolute(self, module: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = module.split(".")
        if not self.is_package(module):
            base.pop()  # a module's relative imports start at its package
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def bindings(self, module: str) -> dict[str, list[ast.AST]]:
        """Name -> the statements that bind it at the module's top level, in order (the last one is what
        the name is; those of an ``except`` or ``else`` branch count only where nothing else bound it)."""
        if module in self._bindings:
            return self._bindings[module]
        found: dict[str, list[ast.AST]] = {}
        stars: list[ast.ImportFrom] = []

        def bind(name: str, node: ast.AST, fallback: bool) -> None:
            if not fallback or name not in found:
                found.setdefault(name, []).append(node)

        def walk(body: list[ast.stmt], fallback: bool) -> None:
            for node in body:
                if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    bind(node.name, node, fallback)
                elif isinstance(node, ast.ImportFrom):
                    for alias in node.names:
                        if alias.name == "*":
                            stars.append(node)
                        else:
                            bind(alias.asname or alias.name, node, fallback)
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        bind(alias.asname or alias.name.split(".")[0], node, fallback)
                elif isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            bind(target.id, node, fallback)
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
                    bind(node.target.id, node, fallback)
                elif isinstance(node, ast.If):
                    walk(node.body, fallback)
                    walk(node.orelse, True)
                elif isinstance(node, ast.Try):
                    walk(node.body, fallback)
                    walk(node.orelse, fallback)
                    for handler in node.handlers:
                        walk(handler.body, True)
                    walk(node.finalbody, fallback)
                elif isinstance(node, ast.With):
                    walk(node.body, fallback)

        tree = self.tree(module)
        if tree is not None:
            walk(tree.body, False)
        found["*"] = stars  # type: ignore[assignment]
        self._bindings[module] = found
        return found

    def public_names(self, module: str) -> list[str]:
        """The module's ``__all__`` where it has a literal one, else its public top-level names."""
        node = (self.bindings(module).get("__all__") or [None])[-1]
        if isinstance(node, ast.Assign | ast.AnnAssign):
            try:
                return list(ast.literal_eval(node.value))
            except ValueError:
                pass
        return [name for name in self.bindings(module) if not name.startswith("_") and name != "*"]

    def resolve(self, module: str, name: str, seen: frozenset = frozenset(), skip: int = 0) -> Found:
        """What ``name`` is in ``module``: followed through imports and assignments to its definition
        (``skip``: leave out that many of its last bindings, for ``X = X`` after an import of ``X``)."""
        key = (module, name, skip)
        if key in seen or len(seen) > 50:
            return Found("unknown", module, text=f"{module}.{name} (a loop)")
        seen = seen | {key}
        nodes = self.bindings(module).get(name, [])
        node = nodes[-1 - skip] if len(nodes) > skip else None
        if isinstance(node, ast.ClassDef):
            return Found("class", module, node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return Found("function", module, node)
        if isinstance(node, ast.ImportFrom):
            source = self.absolute(module, node)
            alias = next(a for a in node.names if (a.asname or a.name) == name)
            return self.resolve(source, alias.name, seen)
        if isinstance(node, ast.Import):
            alias = next(a for a in node.names if (a.asname or a.name.split(".")[0]) == name)
            return Found("module", alias.name if alias.asname else name)
        if isinstance(node, ast.Assign | ast.AnnAssign):
            if isinstance(node.value, ast.Name) and node.value.id == name:
                return self.resolve(module, name, seen, skip + 1)
            return self.resolve_expression(module, node.value, seen)
        if f"{module}.{name}" in self.sources:
            return Found("module", f"{module}.{name}")
        for star in self.bindings(module).get("*", []):
            source = self.absolute(module, star)
            if name in self.public_names(source):
                return self.resolve(source, name, seen)
        return Found("unknown", module, text=f"{module}.{name}")

    def resolve_expression(self, module: str, value: ast.expr, seen: frozenset = frozenset()) -> Found:
        """A name or a dotted name (``a.b.C``) in ``module``, followed; anything else is a value."""
        if isinstance(value, ast.Name):
            return self.resolve(module, value.id, seen)
        if isinstance(value, ast.Attribute):
            owner = self.resolve_expression(module, value.value, seen)
            if owner.what == "module":
                return self.resolve(owner.module, value.attr, seen)
            if owner.what == "class":
                for cls in self.mro(owner):
                    for node in cls.node.body:
                        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == value.attr:
                            return Found("class" if isinstance(node, ast.ClassDef) else "function", cls.module, node)
                        if isinstance(node, ast.Assign) and any(
                            isinstance(t, ast.Name) and t.id == value.attr for t in node.targets
                        ):
                            return self.resolve_expression(cls.module, node.value, seen)
            return Found("unknown", module, text=ast.unparse(value))
        return Found("value", module, text=ast.unparse(value))

    def bases(self, cls: Found) -> list[Found]:
        return [self.resolve_expression(cls.module, base) for base in cls.node.bases]

    def mro(self, cls: Found) -> list[Found]:
        """The class and the bases found in the sources, in Python's order (C3 linearisation)."""

        def linearise(c: Found, depth: int = 0) -> list[Found]:
            if depth > 30:
                return [c]
            parents = [b for b in self.bases(c) if b.what == "class"]
            sequences = [linearise(p, depth + 1) for p in parents] + [parents]
            result = [c]
            while any(sequences):
                sequences = [s for s in sequences if s]
                for seq in sequences:
                    head = seq[0]
                    if not any(head in s[1:] for s in sequences):
                        break
                else:  # no consistent order: fall back on depth-first
                    head = sequences[0][0]
                result.append(head)
                sequences = [[x for x in s if x != head] for s in sequences]
            return result

        return linearise(cls)


# -- what a class or a function offers -----------------------------------------------------------------


def parameters(function: ast.FunctionDef, drop_first: bool) -> list[dict]:
    """The parameter list of a ``def``, in order, each with its kind and its default's source."""
    args = function.args
    positional = [("posonly", a) for a in args.posonlyargs] + [("arg", a) for a in args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    listed = [(kind, a, d) for (kind, a), d in zip(positional, defaults, strict=True)]
    if args.vararg:
        listed.append(("vararg", args.vararg, None))
    listed += [("kwonly", a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg:
        listed.append(("kwarg", args.kwarg, None))
    if drop_first and listed and listed[0][0] in ("posonly", "arg"):
        listed = listed[1:]
    return [
        {
            "name": a.arg,
            "kind": PARAMETER_KINDS[kind],
            "has_default": default is not None,
            "default": ast.unparse(default) if default is not None else None,
        }
        for kind, a, default in listed
    ]


def decorator_names(function: ast.FunctionDef) -> list[str]:
    names = []
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        names.append(ast.unparse(target))
    return names


def function_kind(function: ast.FunctionDef) -> str | None:
    """``method``, ``staticmethod``, ``classmethod`` or ``property``; None for a setter or deleter."""
    for name in decorator_names(function):
        last = name.rsplit(".", 1)[-1]
        if last in ("setter", "deleter"):
            return None
        if last in KIND_DECORATORS:
            return KIND_DECORATORS[last]
        if last.endswith("property") or last == "getter":
            return "property"
    return "method"


DEPRECATED = re.compile(
    r"This (method|class|property|function) (is|has been) deprecated|This is a deprecated|^\s*Deprecated[.:]", re.M
)


def is_deprecated(node: ast.FunctionDef | ast.ClassDef) -> bool:
    """Whether the SDK says so: a ``@deprecated`` decorator, or a docstring that says the member is."""
    if any("deprecat" in name.lower() for name in decorator_names(node)):
        return True
    return bool(DEPRECATED.search(ast.get_docstring(node) or ""))


def describe_function(function: ast.FunctionDef, kind: str) -> dict:
    entry: dict = {"kind": kind}
    if kind != "property":
        entry["params"] = parameters(function, drop_first=kind in ("method", "classmethod"))
    if is_deprecated(function):
        entry["deprecated"] = True
    return entry


def is_public(name: str) -> bool:
    return not name.startswith("_")


# Bases whose members are machinery, not anything a user calls: the logging identity of runs and
# experiments (``identity``, ``DELIM``).
MACHINERY = {"azureml._logging.chained_identity.ChainedIdentity"}


def is_private_path(qualname: str) -> bool:
    return any(part.startswith("_") for part in qualname.split("."))


def class_members(sources: Sources, cls: Found) -> dict[str, dict]:
    """The public members of a class, its own and inherited ones, each as recorded in the table. Left
    out: what the machinery bases define, the UPPER_CASE constants of private bases (portal URL formats),
    and the nested classes a class inherits (``FileDataset.Tabular``: ``Dataset.Tabular`` is the one used)."""
    members: dict[str, dict] = {}
    for owner in sources.mro(cls):
        defined_in = owner.qualname
        if defined_in in MACHINERY:
            continue
        for node in owner.node.body:
            found: list[tuple[str, dict]] = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and is_public(node.name):
                kind = function_kind(node)
                if kind is not None:
                    found.append((node.name, describe_function(node, kind)))
            elif isinstance(node, ast.ClassDef) and is_public(node.name):
                found.append((node.name, {"kind": "class"}))
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and is_public(target.id):
                        found.append((target.id, class_attribute(sources, owner, node.value)))
            for name, entry in found:
                inherited = owner != cls
                if inherited and entry["kind"] == "class":
                    continue
                if inherited and name.isupper() and is_private_path(defined_in):
                    continue
                if name not in members:
                    members[name] = {**entry, "defined_in": defined_in}
    for owner in sources.mro(cls):  # what __init__ sets on self, where no class member has the name
        if owner.qualname in MACHINERY:
            continue
        init = next((n for n in owner.node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is None or not init.args.args:
            continue
        me = init.args.args[0].arg
        for node in ast.walk(init):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == me
                    and is_public(target.attr)
                    and target.attr not in members
                ):
                    members[target.attr] = {"kind": "attribute", "defined_in": owner.qualname}
    return members


def class_attribute(sources: Sources, owner: Found, value: ast.expr) -> dict:
    """A class-level assignment: a nested class (``Tabular = TabularDatasetFactory``), a property made
    with ``property(...)``, an alias of a method, or a plain value."""
    if isinstance(value, ast.Call) and ast.unparse(value.func) == "property":
        return {"kind": "property"}
    if isinstance(value, ast.Name):
        for node in owner.node.body:
            if isinstance(node, ast.FunctionDef) and node.name == value.id:
                kind = function_kind(node) or "method"
                return {**describe_function(node, kind), "alias_of": node.name}
    if isinstance(value, ast.Name | ast.Attribute):
        found = sources.resolve_expression(owner.module, value)
        if found.what == "class":
            return {"kind": "class", "class": found.qualname}
        if found.what == "function":  # ``get_by_name = _Dataset.get_by_name``
            kind = function_kind(found.node) or "method"
            return {**describe_function(found.node, kind), "alias_of": ast.unparse(value)}
    text = ast.unparse(value)
    return {"kind": "attribute", "value": text if len(text) <= 80 else text[:77] + "..."}


def constructor(sources: Sources, cls: Found) -> dict:
    """The parameters the class is called with: the first ``__init__`` (else ``__new__``) of its MRO."""
    for special in ("__init__", "__new__"):
        for owner in sources.mro(cls):
            for node in owner.node.body:
                if isinstance(node, ast.FunctionDef) and node.name == special:
                    return {"params": parameters(node, drop_first=True), "constructor_in": owner.qualname}
    return {"params": None, "constructor_in": None}


def class_entries(sources: Sources, cls: Found, key: str, qualname: str, module: str, depth: int = 0) -> dict:
    """The table's entries for a class: itself (kind ``class``, with its constructor) and its members;
    a nested class (``Dataset.Tabular``) with its own members in turn."""
    bases = [b.qualname if b.what == "class" else b.text or b.module for b in sources.bases(cls)]
    entries = {
        key: {
            "kind": "class",
            "module": module,
            "qualname": qualname,
            "defined_in": cls.qualname,
            "bases": bases,
            **constructor(sources, cls),
        }
    }
    if is_deprecated(cls.node):
        entries[key]["deprecated"] = True
    for name, member in sorted(class_members(sources, cls).items()):
        if member["kind"] == "class" and "class" in member and depth < 2:
            nested = _find_class(sources, member["class"])
            if nested is not None:
                entries.update(class_entries(sources, nested, f"{key}.{name}", f"{qualname}.{name}", module, depth + 1))
                continue
        entries[f"{key}.{name}"] = {"module": module, "qualname": f"{qualname}.{name}", **member}
    return entries


def _find_class(sources: Sources, qualname: str) -> Found | None:
    module, _, name = qualname.rpartition(".")
    found = sources.resolve(module, name)
    return found if found.what == "class" else None


def names_table() -> dict[str, dict[str, str]]:
    """localpipe/compat/names.py's MODULES, read as data (without importing localpipe)."""
    tree = ast.parse(NAMES.read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id == "MODULES":
                try:
                    return ast.literal_eval(node.value)
                except ValueError:
                    break
    sys.path.insert(0, str(REPO))  # not a literal any more: ask the module itself
    from localpipe.compat.names import MODULES

    return MODULES


def surface() -> dict[str, list[str]]:
    """``SURFACE`` and the names of names.py, module -> names, in ``SURFACE``'s order first."""
    merged = {module: list(names) for module, names in SURFACE.items()}
    for module, names in names_table().items():
        for name in names:
            if name not in merged.setdefault(module, []):
                merged[module].append(name)
    return merged


def build_table(sources: Sources, wheels: list[dict], names: dict[str, list[str]] | None = None) -> dict:
    """The whole table: the wheels read, every public name of ``names`` (the surface: ``SURFACE`` and
    names.py's) and, for classes, their members."""
    members: dict[str, dict] = {}
    by_definition: dict[str, str] = {}  # where a name is defined -> the key it is filed under
    exports: dict[str, set[str]] = {}
    problems: list[str] = []
    for module, listed in (names if names is not None else surface()).items():
        for name in listed:
            found = sources.resolve(module, name)
            if found.what in ("unknown", "module"):
                problems.append(f"{module}.{name}: {found.what} {found.text}")
                continue
            definition = found.qualname if found.what != "value" else f"{module}.{name}"
            key = by_definition.setdefault(definition, f"{module}.{name}")
            exports.setdefault(key, set()).add(module)
            if key != f"{module}.{name}":
                continue
            if found.what == "class":
                exports[key].add(found.module)  # a class can also be imported from where it is defined
                members.update(class_entries(sources, found, key, name, module))
            elif found.what == "function":
                entry = {"kind": "function", "module": module, "qualname": name, "defined_in": definition}
                members[key] = {**entry, "params": parameters(found.node, drop_first=False)}
            else:
                members[key] = {
                    "kind": "constant",
                    "module": module,
                    "qualname": name,
                    "defined_in": found.module,
                    "value": found.text,
                }
    for key, modules in exports.items():
        members[key]["exported_from"] = sorted(m for m in modules if all(is_public(p) for p in m.split(".")))
    if problems:
        raise SystemExit("names not found in the SDK's sources:\n  " + "\n  ".join(problems))
    return {
        "about": "The Azure ML SDK v1's public signatures, made by tools/sdk_signatures.py from the wheels listed "
        "(read with ast, never installed). Members are keyed by the module a user imports them from; "
        "params leave out self and cls.",
        "wheels": wheels,
        "members": members,
    }


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def table_text(table: dict) -> str:
    """The table as the file holds it: JSON with sorted keys, a line per member and per parameter (so
    that a regenerated table's diff reads member by member)."""

    def member(entry: dict) -> str:
        parts = []
        for name in sorted(entry):
            value = entry[name]
            if name == "params" and value:
                rows = ",\n".join("   " + json.dumps(p, sort_keys=True) for p in value)
                text = "[\n" + rows + "\n  ]"
            else:
                text = json.dumps(value, sort_keys=True)
            parts.append(f"{json.dumps(name)}: {text}")
        return "{" + ", ".join(parts) + "}"

    lines = ["{"]
    for name in sorted(table):
        if name == "members":
            rows = ",\n".join(f"  {json.dumps(k)}: {member(v)}" for k, v in sorted(table["members"].items()))
            lines.append(f' "members": {{\n{rows}\n }},')
        elif name == "wheels":
            rows = ",\n".join("  " + json.dumps(w, sort_keys=True) for w in table["wheels"])
            lines.append(f' "wheels": [\n{rows}\n ],')
        else:
            lines.append(f" {json.dumps(name)}: {json.dumps(table[name], sort_keys=True)},")
    lines[-1] = lines[-1].rstrip(",")
    return "\n".join(lines) + "\n}\n"


# -- the command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, help="read the wheels in this folder instead of downloading them")
    parser.add_argument("--markdown", action="store_true", help="only rewrite docs/azureml-compat.md from the table")
    parser.add_argument(
        "--sync-differences",
        action="store_true",
        help="bring tests/data/azureml_intended_differences.json in line with localpipe (new entries UNREVIEWED)",
    )
    options = parser.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tools import azureml_compat

    if not (options.markdown or options.sync_differences):
        with tempfile.TemporaryDirectory() as tmp:
            wheels = sorted(options.wheels.glob("*.whl")) if options.wheels else download(Path(tmp))
            wheels = [w for w in wheels if w.name.split("-")[0].replace("_", "-") in WHEELS]
            table = build_table(Sources(read_sources(wheels)), [wheel_info(w) for w in wheels])
        TABLE.parent.mkdir(parents=True, exist_ok=True)
        TABLE.write_text(table_text(table))
        print(f"{TABLE.relative_to(REPO)}: {len(table['members'])} members")
    if options.sync_differences:
        write_json(DIFFERENCES, azureml_compat.sync_differences())
        print(f"{DIFFERENCES.relative_to(REPO)} brought in line: review every {azureml_compat.UNREVIEWED} reason")
    azureml_compat.write_doc()
    print(f"{DOC.relative_to(REPO)} written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
