"""localpipe's signatures against the Azure ML SDK v1's (issue 14).

The SDK's public signatures are data, ``tests/data/azureml_sdk_signatures.json``, made from its wheels by
``tools/sdk_signatures.py`` (nothing here downloads anything). Each member is compared with its localpipe
counterpart, found through the ``azureml`` names localpipe maps (``localpipe/compat/names.py``), with
``inspect``; ``tests/data/azureml_intended_differences.json`` says why each difference, each missing
member and each ``**kwargs`` is there. A difference, a missing member or a ``**kwargs`` it does not list
fails, and so does an entry that no longer holds (take it out: ``python3 tools/sdk_signatures.py
--sync-differences`` does, and lists what is new as UNREVIEWED for you to explain).
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import json
import zipfile

import pytest

from tools import azureml_compat as compat
from tools import sdk_signatures as signatures

TABLE = json.loads(signatures.TABLE.read_text())
MEMBERS = sorted(TABLE["members"])
SECTIONS = ("different", "missing", "no_local_meaning", "var_keyword")


@functools.cache
def differences() -> dict:
    return compat.load_differences()


@functools.cache
def states() -> dict[str, compat.Status]:
    return compat.statuses(TABLE, differences())


def is_pattern(key: str) -> bool:
    return any(c in key for c in "*?[")


def member_id(key: str) -> str:
    return key.removeprefix("azureml.")


# -- the data -----------------------------------------------------------------------------------------


def test_the_table_is_as_the_tool_writes_it():
    """Sorted keys, a line per member and per parameter, the wheels it was read from with their hashes."""
    assert signatures.TABLE.read_text() == signatures.table_text(TABLE)
    assert {w["distribution"] for w in TABLE["wheels"]} == set(signatures.WHEELS)
    for wheel in TABLE["wheels"]:
        assert len(wheel["sha256"]) == 64 and wheel["version"].startswith("1."), wheel
    for key, entry in TABLE["members"].items():
        assert key == f"{entry['module']}.{entry['qualname']}"
        assert entry["kind"] in (
            "class",
            "function",
            "method",
            "property",
            "staticmethod",
            "classmethod",
            "attribute",
            "constant",
        )


def test_every_azureml_name_localpipe_maps_is_in_the_table():
    """A name added to names.py is compared too: the table must have it (add it to SURFACE in
    tools/sdk_signatures.py if needed, and run the tool)."""
    exported = {
        (module, entry["qualname"]) for entry in TABLE["members"].values() for module in entry.get("exported_from", ())
    }
    unknown = [
        f"{module}.{name}"
        for module, names in signatures.names_table().items()
        for name in names
        if (module, name) not in exported
    ]
    assert not unknown, f"names.py maps names the SDK table lacks (run tools/sdk_signatures.py): {unknown}"


def test_the_differences_file_is_reviewed():
    """Every entry says why, in the words the doc counts: TODO (a gap) or deliberate for a difference,
    an issue or a plan for a missing member, why one machine has no use for the rest."""
    data = differences()
    assert set(data) == {"about", *SECTIONS}
    text = json.dumps(data)
    assert compat.UNREVIEWED not in text, "reasons left UNREVIEWED by --sync-differences: write them"
    for key, entry in data["different"].items():
        assert entry["reason"].startswith(("TODO issue", "deliberate: ")), key
        assert entry["differences"], key
    for key, reason in data["missing"].items():
        assert reason.startswith(("not built yet: issue ", "not planned")), key
    for key, reason in data["no_local_meaning"].items():
        assert reason.startswith("no meaning on one machine: "), key
    for key, reason in data["var_keyword"].items():
        assert reason.startswith(("TODO issue", "deliberate: ")), key
    assert signatures.DIFFERENCES.read_text() == json.dumps(data, indent=1, sort_keys=True) + "\n"


def test_no_entry_outlives_what_it_explains():
    """An entry for a member that is now the same (or present, or gone from the table), or a pattern that
    matches nothing, is stale: take it out, so that the lists only shrink as the gaps close."""
    data = differences()
    stale = []
    for key in data["different"]:
        if key not in TABLE["members"] or states()[key].status not in ("different", "no local meaning"):
            stale.append(f"different: {key}")
    for section, wanted in (("missing", ("missing",)), ("no_local_meaning", ("no local meaning",))):
        for key in data[section]:
            matched = [k for k in MEMBERS if fnmatch.fnmatchcase(k, key)] if is_pattern(key) else [key]
            if not any(k in TABLE["members"] and states()[k].status in wanted for k in matched):
                stale.append(f"{section}: {key}")
    current = compat.var_keyword_callables(TABLE)
    stale += [f"var_keyword: {path}" for path in data["var_keyword"] if path not in current]
    assert not stale, f"entries of {signatures.DIFFERENCES.name} that no longer hold: {stale}"


# -- each member --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", MEMBERS, ids=member_id)
def test_member_is_the_sdks_or_says_why(key):
    state = states()[key]
    entry = TABLE["members"][key]
    listed = differences()["different"].get(key)
    if state.status == "missing":
        assert state.why, f"localpipe lacks {key}: list it under missing with why (an issue, or not planned)"
        assert key not in differences()["different"]
        return
    if not state.differences:
        assert listed is None, f"{key} is now the same as the SDK's: remove it from different"
        return
    shown = f"{entry['qualname']}({compat._parameters_text(entry['params'])})" if entry.get("params") else key
    assert listed is not None, (
        f"{key} differs from the SDK's {shown}: {state.differences}; "
        f'fix it, or list it under different: {{"differences": {json.dumps(state.differences)}, "reason": ...}}'
    )
    assert listed["differences"] == state.differences, (
        f"{key} differs otherwise than listed: now {state.differences}, listed {listed['differences']}"
    )


def test_no_callable_takes_keywords_the_sdk_does_not():
    """A ``**kwargs`` where the SDK has none swallows a misspelled keyword (``argumnets=``) that the SDK
    refuses with TypeError (issue 14 item 3)."""
    listed = differences()["var_keyword"]
    found = compat.var_keyword_callables(TABLE)
    unlisted = {path: sdk for path, sdk in found.items() if path not in listed}
    assert not unlisted, f"take **kwargs where the SDK's counterpart does not: {unlisted}"


# -- the doc ------------------------------------------------------------------------------------------


def test_the_compat_doc_is_up_to_date():
    written = signatures.DOC.read_text()
    assert written == compat.compat_markdown(TABLE, differences()), (
        "docs/azureml-compat.md is out of date: python3 tools/sdk_signatures.py --markdown"
    )


def test_the_doc_counts_every_member_once():
    counts = compat.summary(states())
    assert counts["members"] == len(MEMBERS)
    assert counts["same"] + counts["different"] + counts["missing"] + counts["no local meaning"] == len(MEMBERS)
    text = signatures.DOC.read_text()
    for key in MEMBERS:
        assert f"`{TABLE['members'][key]['qualname']}" in text, key


# -- the tool, on a made-up SDK -----------------------------------------------------------------------

FAKE = {
    "azureml/__init__.py": "",
    "azureml/core/__init__.py": (
        "from .workspace import Workspace\n"
        "from azureml._base import __version__ as VERSION\n"
        "from .runs import *\n"
        "__all__ = ['Workspace', 'Run']\n"
    ),
    "azureml/_base.py": "__version__ = '1.61.0'\n",
    "azureml/core/workspace.py": (
        "from azureml._impl import _Base\n"
        "try:\n    from azureml._fast import thing\nexcept ImportError:\n    thing = None\n"
        "DEFAULT = 'x'\n"
        "class Workspace(_Base):\n"
        "    '''A workspace.'''\n"
        "    LIMIT = 3\n"
        "    def __init__(self, subscription_id, resource_group, workspace_name, auth=None, *, _location=None):\n"
        "        self.tags = {}\n"
        "        self._hidden = 1\n"
        "    @staticmethod\n"
        "    def from_config(path=None, auth=None, **kwargs): ...\n"
        "    @classmethod\n"
        "    def get(cls, name, *args, location='eastus'): ...\n"
        "    @property\n"
        "    def name(self): ...\n"
        "    @name.setter\n"
        "    def name(self, value): ...\n"
        "    def write_config(self, path=None, /, file_name=DEFAULT): ...\n"
        "    def old(self):\n"
        "        '''Old.\n\n        This method is deprecated, use new.'''\n"
        "    alias = write_config\n"
        "    def _private(self): ...\n"
    ),
    "azureml/_impl.py": (
        "class _Base:\n    def delete(self, no_wait=False): ...\n    def write_config(self, overridden): ...\n"
    ),
    "azureml/core/runs.py": ("from azureml._impl import _Base as _B\nRun = _B\ndef get_run(run_id): ...\n"),
}


@pytest.fixture
def fake_wheel(tmp_path):
    wheel = tmp_path / "azureml_core-1.61.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in FAKE.items():
            archive.writestr(path, text)
        archive.writestr("azureml_core-1.61.0.dist-info/METADATA", "Name: azureml-core\n")
    return wheel


def test_the_tool_follows_reexports_and_reads_signatures(fake_wheel):
    sources = signatures.Sources(signatures.read_sources([fake_wheel]))
    table = signatures.build_table(
        sources,
        [signatures.wheel_info(fake_wheel)],
        names={"azureml.core": ["Workspace", "VERSION", "Run"], "azureml.core.workspace": ["Workspace"]},
    )
    members = table["members"]
    assert table["wheels"][0]["distribution"] == "azureml-core" and table["wheels"][0]["version"] == "1.61.0"
    workspace = members["azureml.core.Workspace"]
    assert workspace["defined_in"] == "azureml.core.workspace.Workspace"
    assert workspace["exported_from"] == ["azureml.core", "azureml.core.workspace"]
    assert [(p["name"], p["kind"], p["default"]) for p in workspace["params"]] == [
        ("subscription_id", "positional-or-keyword", None),
        ("resource_group", "positional-or-keyword", None),
        ("workspace_name", "positional-or-keyword", None),
        ("auth", "positional-or-keyword", "None"),
        ("_location", "keyword-only", "None"),
    ]
    assert members["azureml.core.Workspace.from_config"]["kind"] == "staticmethod"
    assert [p["kind"] for p in members["azureml.core.Workspace.from_config"]["params"]] == [
        "positional-or-keyword",
        "positional-or-keyword",
        "var-keyword",
    ]
    get = members["azureml.core.Workspace.get"]
    assert get["kind"] == "classmethod"
    assert [(p["name"], p["kind"], p["default"]) for p in get["params"]] == [
        ("name", "positional-or-keyword", None),
        ("args", "var-positional", None),
        ("location", "keyword-only", "'eastus'"),
    ]
    assert members["azureml.core.Workspace.name"]["kind"] == "property"
    write_config = members["azureml.core.Workspace.write_config"]  # its own, not the base's
    assert [(p["name"], p["kind"], p["default"]) for p in write_config["params"]] == [
        ("path", "positional-only", "None"),
        ("file_name", "positional-or-keyword", "DEFAULT"),
    ]
    assert members["azureml.core.Workspace.alias"]["params"] == write_config["params"]
    assert members["azureml.core.Workspace.delete"]["defined_in"] == "azureml._impl._Base"  # inherited
    assert members["azureml.core.Workspace.old"]["deprecated"] is True
    assert members["azureml.core.Workspace.tags"]["kind"] == "attribute"  # set by __init__
    assert members["azureml.core.Workspace.LIMIT"] == {
        "defined_in": "azureml.core.workspace.Workspace",
        "kind": "attribute",
        "module": "azureml.core",
        "qualname": "Workspace.LIMIT",
        "value": "3",
    }
    assert not any("_private" in k or "_hidden" in k for k in members)
    assert members["azureml.core.VERSION"]["value"] == "'1.61.0'"
    assert members["azureml.core.Run"]["defined_in"] == "azureml._impl._Base"  # through `import *` and `Run = _B`
    json.loads(signatures.table_text(table))  # the file's form is JSON


def test_parameters_are_compared_by_name_position_kind_and_default():
    def params(source: str) -> list[dict]:
        return signatures.parameters(ast.parse(source).body[0], drop_first=False)

    import inspect

    def local(source: str) -> inspect.Signature:
        namespace: dict = {}
        exec(source, namespace)
        return inspect.signature(namespace["f"])

    sdk = params("def f(a, b=None, c=1800, *, d='x', **kwargs): ...")
    assert compat.compare_parameters(sdk, local("def f(a, b=None, c=1800, *, d='x', **kw): ...")) == []
    assert compat.compare_parameters(sdk, local("def f(a, c=1800, b=None, *, d='x', e=2, **kw): ...")) == [
        "adds e",
        "positions (a, c, b) where the SDK has (a, b, c)",
    ]
    assert compat.compare_parameters(sdk, local("def f(a, b, c=None, d='y'): ...")) == [
        "lacks **kwargs",
        "b is required (SDK default: None)",
        "c defaults to None (SDK: 1800)",
        "d is positional-or-keyword, not keyword-only",
        "d defaults to 'y' (SDK: 'x')",
    ]
    assert compat.compare_parameters(params("def f(a, _internal=None): ..."), local("def f(a, **_ignored): ...")) == [
        "adds **_ignored"
    ]
