"""localpipe against the Azure ML SDK v1's signatures: what each member of the SDK's table is here.

The table (``tests/data/azureml_sdk_signatures.json``, written by ``tools/sdk_signatures.py``) lists the
SDK's public members; localpipe's counterpart of each is found through the ``azureml`` names localpipe
maps (``localpipe/compat/names.py``) and compared with ``inspect``. ``tests/data/azureml_intended_differences.json``
says why each difference, each missing member and each ``**kwargs`` is there:

- ``different``: member -> ``{"differences": [...], "reason": ...}``; the differences as this module
  words them, so that a new or changed difference fails the tests;
- ``missing``: member (or an ``fnmatch`` pattern of members) -> why localpipe lacks it;
- ``no_local_meaning``: member (or pattern) -> why it has no meaning on one machine;
- ``var_keyword``: localpipe callable (``module:Class.method``) -> why it takes ``**kwargs`` where the
  SDK's counterpart does not (or has none).

A reason that starts with ``TODO`` is a gap to fix (issue 14); anything else is deliberate.
``compat_markdown()`` writes docs/azureml-compat.md from the same data; ``python3 tools/sdk_signatures.py
--markdown`` rewrites it, ``--sync-differences`` brings the differences file in line with localpipe as
it is (stale entries out, new ones in with an ``UNREVIEWED`` reason that the tests refuse until a person
writes why).
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib
import inspect
import json
import re
import textwrap
from dataclasses import dataclass, field

from tools.sdk_signatures import DIFFERENCES, DOC, TABLE, names_table

# Classes a pipeline user never imports but gets back from a call, and localpipe's counterpart:
# ``ws.get_default_datastore()`` and ``Datastore.get(ws, name)`` give an AzureBlobDatastore.
RETURNED: dict[str, str] = {
    "azureml.data.azure_storage_datastore.AzureBlobDatastore": "localpipe.sdk.data:Datastore",
}

# SDK classes whose instances are, in localpipe, of another class than the one the name gives; a member
# the class lacks is looked for on these. (None now: ``Run.get_context()`` gives a subclass of ``Run``.)
INSTANCES: dict[str, list[str]] = {}

# SDK callables whose ``**kwargs`` refuse what they do not know, as their source shows: a localpipe
# counterpart that swallows unknown keywords differs from them although both signatures have ``**``.
SDK_KWARGS_REFUSE: dict[str, str] = {
    "azureml.core.Experiment": "passed on to ChainedIdentity and object.__init__, which raises TypeError",
    "azureml.pipeline.core.Pipeline": "anything but enable_email_notification raises ValueError",
}

UNREVIEWED = "UNREVIEWED"
DEPRECATED_REASON = "deprecated in the SDK itself (its documentation says so): not planned"

PARAMETER_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "positional-only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional-or-keyword",
    inspect.Parameter.VAR_POSITIONAL: "var-positional",
    inspect.Parameter.KEYWORD_ONLY: "keyword-only",
    inspect.Parameter.VAR_KEYWORD: "var-keyword",
}
POSITIONAL = ("positional-only", "positional-or-keyword")

# Kinds a caller cannot tell apart: static and class methods are both called on the class; a property
# and an attribute are both read on an instance.
KIND_FAMILY = {
    "staticmethod": "called on the class",
    "classmethod": "called on the class",
    "method": "method",
    "property": "attribute",
    "attribute": "attribute",
    "class": "class",
    "function": "function",
    "constant": "constant",
}


def load_table() -> dict:
    return json.loads(TABLE.read_text())


def load_differences() -> dict:
    return json.loads(DIFFERENCES.read_text())


def top_key(table: dict, key: str) -> str:
    """The key of the importable name (class or constant) a member belongs to."""
    entry = table["members"][key]
    return f"{entry['module']}.{entry['qualname'].split('.')[0]}"


def counterparts(table: dict) -> dict[str, str]:
    """Importable SDK name -> localpipe's ``"module:attribute"``: what names.py maps it to from any
    module the SDK exports it from (and ``RETURNED``)."""
    mapped = names_table()
    found: dict[str, str] = {}
    for key, entry in table["members"].items():
        for module in entry.get("exported_from", ()):
            target = mapped.get(module, {}).get(entry["qualname"])
            if target is not None:
                found[key] = target
                break
        if key not in found and key in RETURNED:
            found[key] = RETURNED[key]
    return found


def import_target(target: str):
    module, _, attribute = target.partition(":")
    value = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


# -- what localpipe has ------------------------------------------------------------------------------


@functools.cache
def instance_attributes(cls: type) -> frozenset[str]:
    """What localpipe's class sets on ``self`` in its methods, or declares (annotations, ``__slots__``),
    through its MRO: the attributes an instance has that the class itself does not show."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("localpipe"):
            continue
        names.update(klass.__dict__.get("__annotations__", {}))
        slots = klass.__dict__.get("__slots__", ())
        names.update([slots] if isinstance(slots, str) else slots)
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = [node.target]
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                    if target.value.id == "self":
                        names.add(target.attr)
    return frozenset(names)


def member_kind(owner, name: str) -> tuple[str | None, object]:
    """What ``owner.name`` is in localpipe (method, staticmethod, classmethod, property, class or
    attribute) and the raw object (a function for a method), or ``(None, None)``."""
    if not isinstance(owner, type):
        return ("attribute", getattr(owner, name)) if hasattr(owner, name) else (None, None)
    for klass in owner.__mro__:
        if name not in klass.__dict__:
            continue
        value = klass.__dict__[name]
        if isinstance(value, staticmethod):
            return "staticmethod", value.__func__
        if isinstance(value, classmethod):
            return "classmethod", getattr(owner, name)
        if isinstance(value, property):
            return "property", value
        if isinstance(value, type):
            return "class", value
        if inspect.isfunction(value):
            return "method", value
        return "attribute", value
    if name in instance_attributes(owner):
        return "attribute", None
    return None, None


def local_signature(value, kind: str) -> inspect.Signature | None:
    """localpipe's signature of a callable member, without ``self`` (as the table has it)."""
    try:
        if kind == "class" and isinstance(value, type) and issubclass(value, BaseException):
            if "__init__" not in {n for k in value.__mro__ if k.__module__.startswith("localpipe") for n in k.__dict__}:
                return inspect.Signature([inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL)])
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return None
    if kind == "method":
        return signature.replace(parameters=list(signature.parameters.values())[1:])
    return signature


@dataclass
class Local:
    """localpipe's counterpart of one SDK member."""

    path: str  # "localpipe.sdk.data:Dataset.Tabular.from_delimited_files"
    kind: str
    value: object = None
    signature: inspect.Signature | None = None


def local_member(table: dict, key: str, mapped: dict[str, str]) -> Local | None:
    """localpipe's counterpart of the member ``key``, or None where it has none."""
    entry = table["members"][key]
    target = mapped.get(top_key(table, key))
    if target is None:
        return None
    try:
        value = import_target(target)
    except (ImportError, AttributeError):
        return None
    kind = "class" if isinstance(value, type) else "function" if inspect.isfunction(value) else "constant"
    path = target
    for depth, part in enumerate(entry["qualname"].split(".")[1:]):
        kind, value = member_kind(value, part)
        if kind is None and depth == 0:
            for other in INSTANCES.get(top_key(table, key), ()):
                kind, value = member_kind(import_target(other), part)
                if kind is not None:
                    path = other
                    break
        if kind is None:
            return None
        if kind == "attribute" and isinstance(value, type):
            kind = "class"
        path += "." + part
    callables = ("class", "function", "method", "staticmethod", "classmethod")
    signature = local_signature(value, kind) if kind in callables else None
    return Local(path, kind, value, signature)


# -- how they differ ---------------------------------------------------------------------------------


def literal(text: str | None):
    """The value of a default's source where it is a literal, else ``...``."""
    if text is None:
        return ...
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return ...


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


def _repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def compare_parameters(sdk: list[dict], local: inspect.Signature) -> list[str]:
    """How localpipe's parameter list differs from the SDK's, one phrase each, in a stable order."""
    ours = [
        {
            "name": p.name,
            "kind": PARAMETER_KINDS[p.kind],
            "has_default": p.default is not inspect.Parameter.empty,
            "default": p.default,
        }
        for p in local.parameters.values()
    ]
    # Private parameters (``_workflow_provider=None``) are no caller's business, on either side.
    sdk = [p for p in sdk if not (p["name"].startswith("_") and p["has_default"])]
    ours = [p for p in ours if not (p["name"].startswith("_") and p["has_default"])]
    differences: list[str] = []
    for star, text in (("var-positional", "*"), ("var-keyword", "**")):
        theirs_star = next((p for p in sdk if p["kind"] == star), None)
        ours_star = next((p for p in ours if p["kind"] == star), None)
        if theirs_star and not ours_star:
            differences.append(f"lacks {text}{theirs_star['name']}")
        if ours_star and not theirs_star:
            differences.append(f"adds {text}{ours_star['name']}")
    named_sdk = [p for p in sdk if p["kind"] not in ("var-positional", "var-keyword")]
    named_ours = [p for p in ours if p["kind"] not in ("var-positional", "var-keyword")]
    sdk_names = [p["name"] for p in named_sdk]
    our_names = [p["name"] for p in named_ours]
    lacking = [n for n in sdk_names if n not in our_names]
    if lacking:
        differences.append("lacks " + ", ".join(lacking))
    adding = [n for n in our_names if n not in sdk_names]
    if adding:
        differences.append("adds " + ", ".join(adding))
    positional_sdk = [p["name"] for p in named_sdk if p["kind"] in POSITIONAL]
    positional_ours = [p["name"] for p in named_ours if p["kind"] in POSITIONAL]
    if any(n in positional_ours and positional_ours.index(n) != i for i, n in enumerate(positional_sdk)):
        differences.append(f"positions ({', '.join(positional_ours)}) where the SDK has ({', '.join(positional_sdk)})")
    by_name = {p["name"]: p for p in named_ours}
    for theirs in named_sdk:
        mine = by_name.get(theirs["name"])
        if mine is None:
            continue
        name = theirs["name"]
        if mine["kind"] != theirs["kind"]:
            differences.append(f"{name} is {mine['kind']}, not {theirs['kind']}")
        if theirs["has_default"] and not mine["has_default"]:
            differences.append(f"{name} is required (SDK default: {theirs['default']})")
        elif mine["has_default"] and not theirs["has_default"]:
            differences.append(f"{name} has a default ({_repr(mine['default'])}); the SDK's is required")
        elif theirs["has_default"]:
            value = literal(theirs["default"])
            if value is not ... and not _same(value, mine["default"]):
                differences.append(f"{name} defaults to {_repr(mine['default'])} (SDK: {theirs['default']})")
    for mine in named_ours:
        if mine["name"] not in sdk_names and not mine["has_default"]:
            differences.append(f"{mine['name']} (not in the SDK) is required")
    return differences


@dataclass
class Comparison:
    status: str  # "same", "different", "missing"
    differences: list[str] = field(default_factory=list)
    local: Local | None = None


def compare(table: dict, key: str, mapped: dict[str, str]) -> Comparison:
    """One SDK member against localpipe: missing, same, or different (how)."""
    entry = table["members"][key]
    local = local_member(table, key, mapped)
    if local is None:
        return Comparison("missing")
    differences: list[str] = []
    expected = entry["kind"]
    if KIND_FAMILY[local.kind] != KIND_FAMILY[expected]:
        differences.append(f"is {_a(local.kind)}, not {_a(expected)}")
    elif expected == "constant":
        value = literal(entry.get("value"))
        if value is not ... and not _same(value, local.value):
            differences.append(f"is {_repr(local.value)} (SDK: {entry['value']})")
    elif entry.get("params") is not None and expected != "property":
        if local.signature is None:
            differences.append("has no signature inspect can read")
        else:
            differences += compare_parameters(entry["params"], local.signature)
    return Comparison("different" if differences else "same", differences, local)


def reason_for(table: dict, listing: dict[str, str], key: str) -> str | None:
    """The reason ``listing`` gives for ``key``: its own entry, else the longest pattern matching it."""
    if key in listing:
        return listing[key]
    patterns = [p for p in listing if any(c in p for c in "*?[") and fnmatch.fnmatchcase(key, p)]
    return listing[max(patterns, key=len)] if patterns else None


@dataclass
class Status:
    """What the doc says of one member: same, different (how, why), missing (why), no local meaning (why)."""

    status: str
    differences: list[str]
    why: str | None
    local: Local | None


def statuses(table: dict | None = None, differences: dict | None = None) -> dict[str, Status]:
    table = table if table is not None else load_table()
    differences = differences if differences is not None else load_differences()
    mapped = counterparts(table)
    result: dict[str, Status] = {}
    for key in sorted(table["members"]):
        found = compare(table, key, mapped)
        meaningless = reason_for(table, differences.get("no_local_meaning", {}), key)
        if meaningless is not None:
            result[key] = Status("no local meaning", found.differences, meaningless, found.local)
        elif found.status == "missing":
            why = reason_for(table, differences.get("missing", {}), key)
            if why is None and table["members"][key].get("deprecated"):
                why = DEPRECATED_REASON
            result[key] = Status("missing", [], why, None)
        elif found.status == "different":
            why = differences.get("different", {}).get(key, {}).get("reason")
            result[key] = Status("different", found.differences, why, found.local)
        else:
            result[key] = Status("same", [], None, found.local)
    return result


def summary(states: dict[str, Status]) -> dict[str, float]:
    counts = {
        "members": len(states),
        "same": 0,
        "different": 0,
        "todo": 0,
        "missing": 0,
        "deprecated": 0,
        "no local meaning": 0,
    }
    for state in states.values():
        counts[state.status] += 1
        if state.status == "different" and (state.why or "").startswith("TODO"):
            counts["todo"] += 1
        if state.status == "missing" and state.why == DEPRECATED_REASON:
            counts["deprecated"] += 1
    local = counts["members"] - counts["no local meaning"]
    counts["deliberate"] = counts["different"] - counts["todo"]
    counts["local"] = local
    counts["match %"] = _percent(counts["same"], local)
    counts["compatible %"] = _percent(counts["same"] + counts["deliberate"], local)
    counts["present %"] = _percent(counts["same"] + counts["different"], local)
    return counts


def _percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


# -- **kwargs ----------------------------------------------------------------------------------------


def var_keyword_callables(table: dict | None = None) -> dict[str, str | None]:
    """Every callable of localpipe that an SDK name leads to (the mapped classes' constructors and
    public methods, the factories' methods) and takes ``**kwargs``: localpipe path -> the SDK member
    it stands for, where that member takes none or refuses what it does not know
    (``SDK_KWARGS_REFUSE``); None where the SDK has no such member."""
    table = table if table is not None else load_table()
    mapped = counterparts(table)
    sdk_takes: dict[str, bool] = {}  # localpipe path -> whether an SDK member it stands for takes **kwargs
    sdk_key: dict[str, str] = {}
    for key in table["members"]:
        local = local_member(table, key, mapped)
        if local is None or local.signature is None:
            continue
        params = table["members"][key].get("params") or []
        takes = any(p["kind"] == "var-keyword" for p in params) and key not in SDK_KWARGS_REFUSE
        sdk_takes[local.path] = sdk_takes.get(local.path, False) or takes
        sdk_key.setdefault(local.path, key)
    found: dict[str, str | None] = {}
    for path, signature in _local_callables(mapped).items():
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
            continue
        if sdk_takes.get(path):
            continue
        found[path] = sdk_key.get(path)
    return found


def _local_callables(mapped: dict[str, str]) -> dict[str, inspect.Signature]:
    """localpipe path -> signature, for each mapped class (its constructor, its public methods and
    those of its nested classes) and each mapped function."""
    found: dict[str, inspect.Signature] = {}

    def visit(path: str, value, depth: int = 0) -> None:
        if isinstance(value, type):
            signature = local_signature(value, "class")
            if signature is not None:
                found[path] = signature
            if depth > 1:
                return
            for name in dir(value):
                if name.startswith("_"):
                    continue
                kind, member = member_kind(value, name)
                if kind == "class" and isinstance(member, type) and member.__module__.startswith("localpipe"):
                    visit(f"{path}.{name}", member, depth + 1)
                elif kind in ("method", "staticmethod", "classmethod"):
                    signature = local_signature(member, kind)
                    if signature is not None:
                        found[f"{path}.{name}"] = signature
        elif callable(value):
            try:
                found[path] = inspect.signature(value)
            except (TypeError, ValueError):
                pass

    targets = set(mapped.values())
    for key in mapped:
        targets.update(INSTANCES.get(key, ()))
    for target in sorted(targets):
        try:
            visit(target, import_target(target))
        except (ImportError, AttributeError):
            continue
    return found


# -- keeping the differences file in line ------------------------------------------------------------


def sync_differences(table: dict | None = None, differences: dict | None = None) -> dict:
    """The differences file brought in line with localpipe as it is: entries for what is no longer
    different, missing or taking ``**kwargs`` are dropped; a difference whose wording changed keeps its
    reason; what is new gets an ``UNREVIEWED`` reason for a person to replace."""
    table = table if table is not None else load_table()
    differences = differences if differences is not None else load_differences()
    mapped = counterparts(table)
    meaningless = differences.get("no_local_meaning", {})
    missing_before = differences.get("missing", {})
    different_before = differences.get("different", {})
    different: dict = {}
    missing: dict = {}
    for key in sorted(table["members"]):
        found = compare(table, key, mapped)
        if reason_for(table, meaningless, key) is not None and found.status != "different":
            continue
        if found.status == "different":
            reason = different_before.get(key, {}).get("reason") or f"{UNREVIEWED}: say why, or TODO issue 14"
            different[key] = {"differences": found.differences, "reason": reason}
        elif found.status == "missing" and reason_for(table, meaningless, key) is None:
            if key in missing_before:
                missing[key] = missing_before[key]
            elif reason_for(table, missing_before, key) is None and not table["members"][key].get("deprecated"):
                missing[key] = f"{UNREVIEWED}: not built yet (issue N), or no meaning on one machine (why)"
    for pattern, reason in missing_before.items():  # patterns stay while they match a missing member
        if any(c in pattern for c in "*?[") and any(
            fnmatch.fnmatchcase(k, pattern) and k not in different and compare(table, k, mapped).status == "missing"
            for k in table["members"]
        ):
            missing[pattern] = reason
    var_keyword = {
        path: differences.get("var_keyword", {}).get(path) or f"{UNREVIEWED}: why does it take **kwargs?"
        for path in var_keyword_callables(table)
    }
    return {
        "about": differences.get("about", ""),
        "different": different,
        "missing": missing,
        "no_local_meaning": meaningless,
        "var_keyword": var_keyword,
    }


# -- the doc -----------------------------------------------------------------------------------------


def compat_markdown(table: dict | None = None, differences: dict | None = None) -> str:
    """docs/azureml-compat.md: every member of the table with its status in localpipe."""
    table = table if table is not None else load_table()
    differences = differences if differences is not None else load_differences()
    states = statuses(table, differences)
    counts = summary(states)
    swallowing = differences.get("var_keyword", {})
    wheels = ", ".join(f"{w['distribution']} {w['version']}" for w in table["wheels"])
    lines = [
        "# Azure ML SDK v1 compatibility: each public member a pipeline user meets, and what localpipe has",
        "",
        "<!-- Written by tools/sdk_signatures.py --markdown (tools/azureml_compat.py) from",
        "     tests/data/azureml_sdk_signatures.json, tests/data/azureml_intended_differences.json and",
        "     localpipe itself; tests/test_sdk_signatures.py fails when it is out of date. -->",
        "",
        f"Measured against {wheels}: their sources, read by `tools/sdk_signatures.py`, never installed.",
        "localpipe's counterpart of each name is the one its `azureml` imports give (`localpipe/compat/names.py`,",
        "docs/azureml-imports.md). A member is **same** when localpipe has it, of a kind a caller cannot tell",
        "apart (a static or a class method, a property or an attribute), with the SDK's parameters: names,",
        "positions, kinds, which have defaults, and the defaults' values where they are literals. **different**",
        "says how and why: a reason starting with TODO is a gap to fix (issue 14), any other is deliberate.",
        "**missing** and **no local meaning** say why.",
        "",
        "## Summary",
        "",
        "| members | same | different: TODO, deliberate | missing (deprecated in the SDK) | no local meaning |",
        "|---|---|---|---|---|",
        f"| {counts['members']} | {counts['same']} | {counts['different']}: {counts['todo']}, {counts['deliberate']} "
        f"| {counts['missing']} ({counts['deprecated']}) | {counts['no local meaning']} |",
        "",
        f"Of the {counts['local']} members with a local meaning, {counts['match %']} % are the same, "
        f"{counts['compatible %']} % the same or deliberately different, and {counts['present %']} % present.",
        "",
        "localpipe callables that take `**kwargs` where the SDK's counterpart does not (or refuses unknown",
        "keywords): a TODO swallows a misspelled keyword the SDK would refuse; a deliberate one refuses it too.",
        "",
        "| callable | SDK member | why |",
        "|---|---|---|",
        *(
            f"| `{path}` | {f'`{sdk}`' if sdk else 'none'} | {_cell(swallowing.get(path) or '')} |"
            for path, sdk in sorted(var_keyword_callables(table).items())
        ),
        "",
        "| name | members | same | different | missing | no local meaning |",
        "|---|---|---|---|---|---|",
    ]
    groups: dict[str, list[str]] = {}
    for key in states:
        groups.setdefault(top_key(table, key), []).append(key)
    order = sorted(groups)
    for top in order:
        row = [states[k].status for k in groups[top]]
        lines.append(
            f"| [`{top}`](#{_anchor(top)}) | {len(row)} | {row.count('same')} | {row.count('different')} "
            f"| {row.count('missing')} | {row.count('no local meaning')} |"
        )
    lines.append("")
    for top in order:
        entry = table["members"][top]
        others = [m for m in entry.get("exported_from", []) if m != entry["module"]]
        local = states[top].local
        lines += [
            f"## {top}",
            "",
            ("localpipe: `" + local.path + "`" if local is not None else "localpipe: none")
            + (". Also imported from " + ", ".join(f"`{m}`" for m in others) if others else "")
            + ".",
            "",
            "| member | kind | status | how, why |",
            "|---|---|---|---|",
        ]
        for key in groups[top]:
            member = table["members"][key]
            state = states[key]
            name = member["qualname"]
            if member.get("params") is not None and member["kind"] != "property":
                name += "(" + _parameters_text(member["params"]) + ")"
            kind = member["kind"]
            if (
                member.get("defined_in")
                and not member["defined_in"].endswith("." + member["qualname"].split(".")[0])
                and member["kind"] != "class"
            ):
                kind += f", from `{member['defined_in'].rsplit('.', 1)[-1]}`"
            where = ""
            if state.local is not None and local is not None and not state.local.path.startswith(local.path + "."):
                if state.local.path != local.path:
                    where = f"on `{state.local.path}`"
            text = " — ".join(t for t in (where, "; ".join(state.differences), state.why or "") if t)
            lines.append(f"| `{_cell(name)}` | {kind} | {state.status} | {_cell(text)} |")
        lines.append("")
    return "\n".join(lines)


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9_ -]", "", title.lower()).replace(" ", "-")


def _parameters_text(params: list[dict]) -> str:
    out: list[str] = []
    star = False
    for p in params:
        if p["kind"] == "keyword-only" and not star:
            out.append("*")
            star = True
        prefix = {"var-positional": "*", "var-keyword": "**"}.get(p["kind"], "")
        star = star or p["kind"] == "var-positional"
        out.append(prefix + p["name"] + ("=" + p["default"] if p["has_default"] else ""))
    return ", ".join(out)


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("|", "\\|")


def write_doc() -> None:
    DOC.write_text(compat_markdown())
