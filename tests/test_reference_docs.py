"""The reference pages (issue 17, item 8): docs/reference/sdk.md and cli.md are what tools/reference.py
makes from the code, every public name and member is on them, and every one has a docstring."""

from __future__ import annotations

import inspect

import pytest

from localpipe.cli import cli
from tools import reference

STALE = f"out of date with the code: run `{reference.WRITE_COMMAND}`"


@pytest.mark.parametrize("page", [reference.SDK_PAGE, reference.CLI_PAGE], ids=lambda p: p.name)
def test_the_committed_page_is_what_the_code_makes(page):
    made = reference.pages()[page]
    committed = page.read_text() if page.exists() else ""
    if committed != made:
        pytest.fail(f"{page.relative_to(reference.REPO)} is {STALE}", pytrace=False)


def test_every_public_member_has_a_docstring():
    undocumented = reference.sdk_markdown()[1]
    assert not undocumented, f"no docstring (write one; say how it differs from Azure's, if it does): {undocumented}"


def test_the_sdk_page_names_every_public_name_and_every_azureml_import():
    """From the package and from compat/names.py, each with its members: a name added anywhere shows up."""
    import localpipe
    from localpipe.compat.names import MODULES

    page = reference.SDK_PAGE.read_text()
    for name in localpipe.__all__:
        assert f"`from localpipe import {name}`" in page, name
        value = getattr(localpipe, name)
        if inspect.isclass(value) and "__init__" in value.__dict__:
            assert f"\n{value.__name__}(" in page, f"{name}: its signature"
    for module, names in MODULES.items():
        for name in names:
            assert f"`{module}.{name}`" in page, f"{module}.{name}"
    assert "`get_metrics(" in page and "`from_config(" in page  # members, not only names
    assert "`capitalize" not in page, "str's own methods (RunStatus is a str Enum) are not localpipe's members"


def test_a_subclass_lists_only_what_it_adds_to_its_documented_base():
    publics = {p.name: p.value for p in reference.public_names()}
    documented = {v for v in publics.values() if inspect.isclass(v)}
    step_run = {name for name, _, _ in reference.members(publics["StepRun"], documented)}
    assert "get_stdout_log" in step_run and "get_metrics" not in step_run  # get_metrics: Run's, listed there
    assert reference.documented_bases(publics["StepRun"], documented) == [publics["Run"]]


def test_the_cli_page_has_every_command_and_option():
    page = reference.CLI_PAGE.read_text()
    for name, command in cli.commands.items():
        assert f"\n### localpipe {name}\n" in page, name
        for param in command.params:
            for opt in getattr(param, "opts", ()):
                if opt.startswith("-"):
                    assert opt in page, f"localpipe {name} {opt}"


GUIDE = reference.REPO / "docs" / "coming-from-azureml.md"


def headings_anchors(page) -> set[str]:
    return {
        reference.anchor(line.lstrip("#").strip()) for line in page.read_text().splitlines() if line.startswith("#")
    }


@pytest.mark.parametrize("page", [GUIDE, reference.SDK_PAGE, reference.CLI_PAGE], ids=lambda p: p.name)
def test_every_link_of_the_page_leads_somewhere(page):
    import re

    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if "://" in target:
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if fragment:
            assert fragment in headings_anchors(linked), f"{page.name}: {target} names no heading"


def test_what_the_guide_says_is_not_there_is_not_there():
    """Each name in the first column of its "What is not there" table: a class, module, member or command
    that appears in localpipe must move to "What maps to what" (and the README's status table)."""
    import re

    import localpipe
    from localpipe.compat.names import MODULES

    section = GUIDE.read_text().split("## What is not there", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    names = [name for row in rows[1:] for name in re.findall(r"`([^`]+)`", row)]
    provided = {name for table in MODULES.values() for name in table} | set(localpipe.__all__)
    classes = {p.name: p.value for p in reference.public_names()}
    checked = 0
    for name in names:
        if name.startswith("localpipe "):
            present = name.split()[1] in cli.commands
        elif name.startswith("azureml."):
            present = any(module == name or module.startswith(name + ".") for module in MODULES)
        elif "." in name:
            owner, _, member = name.partition(".")
            present = owner in classes and hasattr(classes[owner], member)
        elif name[:1].isupper():
            present = name in provided
        else:
            continue
        checked += 1
        assert not present, f"docs/coming-from-azureml.md says `{name}` is not there, but it is: say what it maps to"
    assert checked >= 10, names  # the table was read (it shrinks as things get built)


def test_a_public_class_the_groups_do_not_know_still_gets_a_section():
    """Other branches add public classes: the page takes them without a change to the tool."""

    class Unforeseen:
        """A class no group lists."""

        def go(self, fast: bool = False) -> None:
            """Go."""

    Unforeseen.__module__ = "localpipe.sdk.unforeseen"
    public = reference.Public("Unforeseen", Unforeseen, Unforeseen.__module__, ["azureml.core.Unforeseen"])
    assert reference.group_of(public) == reference.OTHER
    assert (
        reference.group_of(reference.Public("ParallelRunStep", Unforeseen, "localpipe.sdk.x")) == "Steps and pipelines"
    )
    undocumented: list[str] = []
    text = "\n".join(reference.object_section(public, {Unforeseen}, undocumented))
    assert "- `go(fast: bool = False) -> None`: Go." in text and "`azureml.core.Unforeseen`" in text
    assert undocumented == []
