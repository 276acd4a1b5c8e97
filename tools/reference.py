"""The reference pages, made from the code: docs/reference/sdk.md and docs/reference/cli.md.

    python tools/reference.py            # say which pages differ from what the code makes (exit 1 if any)
    python tools/reference.py --write    # rewrite them

The SDK page lists every public name a user imports: those of ``localpipe`` (its ``__all__``) and those
the ``azureml.*`` modules of ``localpipe/compat/names.py`` map; for each, its signature, the first
paragraph of its docstring, its public members (those localpipe defines; a subclass lists what it adds
to its documented base) and the names it is importable as. The CLI page lists every command of
``localpipe.cli`` with its usage, help and options. ``tests/test_reference_docs.py`` checks that the
committed pages are what this writes; a new public class lands in the group its module names
(``GROUPS``), else under "Other names", so after adding one, ``--write`` is all there is to do.
"""

from __future__ import annotations

import argparse
import enum
import inspect
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: tools/ and localpipe/ from this checkout
    sys.path.insert(0, str(REPO))

from tools.azureml_compat import import_target, instance_attributes, local_signature, member_kind  # noqa: E402
from tools.sdk_signatures import names_table  # noqa: E402

SDK_PAGE = REPO / "docs" / "reference" / "sdk.md"
CLI_PAGE = REPO / "docs" / "reference" / "cli.md"
WRITE_COMMAND = "python tools/reference.py --write"

# The groups of the SDK page, as a user thinks of them: a name goes to the group that lists it (first in
# that order), else to the group of the longest module prefix that holds it (after the listed ones, by
# name), else under OTHER. Names not built yet are listed too, so that they land well when they are.
GROUPS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    (
        "Workspace and compute targets",
        ("localpipe.sdk.workspace", "localpipe.sdk.compute"),
        ("Workspace", "ComputeTarget", "LocalCompute", "AmlCompute", "RayCompute"),
    ),
    (
        "Data: datastores, datasets, data between steps",
        ("localpipe.sdk.data",),
        (
            "Datastore",
            "DataReference",
            "DataPath",
            "DataPathComputeBinding",
            "Dataset",
            "FileDataset",
            "TabularDataset",
            "DatasetConsumptionConfig",
            "PipelineData",
            "OutputFileDatasetConfig",
        ),
    ),
    (
        "Steps and pipelines",
        ("localpipe.sdk.steps", "localpipe.sdk.pipeline", "localpipe.sdk.parameters"),
        (
            "Pipeline",
            "StepSequence",
            "PipelineParameter",
            "PythonScriptStep",
            "CommandStep",
            "ParallelRunStep",
            "ParallelRunConfig",
        ),
    ),
    (
        "Published pipelines, endpoints and schedules",
        ("localpipe.sdk.published", "localpipe.client.published"),
        ("PublishedPipeline", "PipelineEndpoint", "Schedule", "ScheduleRecurrence", "TimeZone"),
    ),
    (
        "Experiments and runs",
        ("localpipe.client", "localpipe.sdk.script_run", "localpipe.status"),
        ("Experiment", "ScriptRunConfig", "Run", "PipelineRun", "StepRun", "RunStatus", "RunDetails"),
    ),
    (
        "Environments and run configurations",
        ("localpipe.sdk.environment", "localpipe.sdk.conda", "localpipe.sdk.runconfig"),
        ("Environment", "CondaDependencies", "RunConfiguration", "DockerConfiguration"),
    ),
    (
        "Hyperparameter tuning",
        ("localpipe.sdk.hyperdrive",),
        ("HyperDriveConfig", "HyperDriveRun", "RandomParameterSampling", "GridParameterSampling", "BanditPolicy"),
    ),
    ("Models", ("localpipe.sdk.model", "localpipe.client.models"), ("Model",)),
    ("Exceptions", ("localpipe.errors",), ("LocalpipeError",)),
    ("The package", (), ("__version__",)),
]
OTHER = "Other names"
# Signatures go in plain ``` blocks: ruff formats ```python blocks of Markdown, and would rewrap the
# ones that happen to be valid calls (no annotations), so that the page would never match what is written.
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # object reprs in defaults: no addresses, so the page is stable


# -- what is public ---------------------------------------------------------------------------------------


@dataclass
class Public:
    """One public object and every name it is importable as."""

    name: str  # as the page titles it: the class's own name, else the first name found
    value: object
    module: str  # where it lives (for the group)
    imports: list[str] = field(default_factory=list)  # "localpipe.Workspace", "azureml.core.Workspace", ...


def public_names() -> list[Public]:
    """``localpipe.__all__`` and the targets of names.py, one entry per object (per target for constants)."""
    import localpipe

    found: dict[object, Public] = {}

    def add(import_name: str, module: str, attribute: str, value) -> None:
        constant = not (inspect.isclass(value) or inspect.isroutine(value))
        key = f"{module}:{attribute}" if constant else value
        if key not in found:
            title = attribute if constant else value.__name__
            found[key] = Public(title, value, module if constant else value.__module__)
        found[key].imports.append(import_name)

    for name in localpipe.__all__:
        value = getattr(localpipe, name)
        add(f"localpipe.{name}", "localpipe", name, value)
    for azure_module, names in names_table().items():
        for name, target in names.items():
            module, _, attribute = target.partition(":")
            add(f"{azure_module}.{name}", module, attribute, import_target(target))
    return list(found.values())


def group_of(public: Public) -> str:
    for title, _, names in GROUPS:
        if public.name in names:
            return title
    best, best_length = OTHER, -1
    for title, prefixes, _ in GROUPS:
        for prefix in prefixes:
            if (public.module == prefix or public.module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = title, len(prefix)
    return best


def grouped(publics: list[Public]) -> list[tuple[str, list[Public]]]:
    groups: dict[str, list[Public]] = {title: [] for title, _, _ in GROUPS}
    groups[OTHER] = []
    order = {name: i for _, _, names in GROUPS for i, name in enumerate(names)}
    for public in publics:
        groups[group_of(public)].append(public)
    return [
        (title, sorted(members, key=lambda p: (order.get(p.name, len(order)), p.name)))
        for title, members in groups.items()
        if members
    ]


# -- text of one object ---------------------------------------------------------------------------------


class _Annotation(str):
    """A string annotation that ``inspect`` prints without quotes (``x: str | None``, not ``x: 'str | None'``)."""

    def __repr__(self) -> str:
        return str(self)


def signature_text(signature: inspect.Signature | None, returns: bool = True) -> str:
    if signature is None:
        return "(...)"
    parameters = [
        p.replace(annotation=_Annotation(p.annotation)) if isinstance(p.annotation, str) else p
        for p in signature.parameters.values()
    ]
    annotation = signature.return_annotation
    if not returns:
        annotation = inspect.Signature.empty
    elif isinstance(annotation, str):
        annotation = _Annotation(annotation)
    text = ADDRESS.sub("", str(signature.replace(parameters=parameters, return_annotation=annotation)))
    return text.replace(f"={sys.maxsize}", "=sys.maxsize")  # as the SDK writes it, and on any platform


def first_paragraph(value) -> str | None:
    """The first paragraph of the docstring written on ``value`` itself, on one line, or None where there is
    none. Not ``inspect.getdoc``: it hands an override without a docstring its base's, a class its base
    class's and an enum member its class's, which may say the opposite of what the override does."""
    doc = getattr(value, "__doc__", None)
    if isinstance(value, enum.Enum) or (inspect.isclass(value) and "__doc__" not in value.__dict__):
        doc = None
    if not doc:
        return None
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def constant_text(value) -> str:
    """A class attribute or constant's value when it is a plain literal, else what type it is."""
    if value is None or isinstance(value, bool | int | float | str):
        return f"= {value!r}"
    return f"(a `{type(value).__name__}`)"


def defining_class(cls: type, name: str) -> type | None:
    return next((klass for klass in cls.__mro__ if name in klass.__dict__), None)


def documented_bases(cls: type, documented: set[type]) -> list[type]:
    """The nearest bases of ``cls`` that the page documents: their members are not repeated under it."""
    bases = [b for b in cls.__mro__[1:] if b in documented]
    return [b for b in bases if not any(b in other.__mro__[1:] for other in bases)]


def members(cls: type, documented: set[type]) -> list[tuple[str, str, object]]:
    """``(name, kind, value)`` of the public members localpipe defines on ``cls`` and not on a documented
    base: methods, properties, nested classes and class attributes, then the instance attributes."""
    inherited = [b for base in documented_bases(cls, documented) for b in base.__mro__]
    found = []
    names = sorted(n for n in dir(cls) if not n.startswith("_"))
    for name in names:
        owner = defining_class(cls, name)
        if owner is None or owner in inherited or not owner.__module__.startswith("localpipe"):
            continue
        kind, value = member_kind(cls, name)
        found.append((name, kind, value))
    listed = {name for name, _, _ in found}
    base_attributes = {a for base in documented_bases(cls, documented) for a in instance_attributes(base)}
    for name in sorted(instance_attributes(cls) - base_attributes - listed):
        if not name.startswith("_") and not hasattr(cls, name):
            found.append((name, "instance attribute", None))
    return found


KIND_LABELS = {"method": "", "staticmethod": " (static method)", "classmethod": " (class method)"}


def member_line(name: str, kind: str, value) -> tuple[str, str | None]:
    """The member's entry (its signature for a callable) and its one line: "" where a value says it all,
    None where a docstring is missing."""
    if kind in KIND_LABELS:
        return f"`{name}{signature_text(local_signature(value, kind))}`{KIND_LABELS[kind]}", first_paragraph(value)
    if kind == "property":
        return f"`{name}` (property)", first_paragraph(value)
    if isinstance(value, enum.Enum):
        return f"`{name}` = {value.value!r}", ""
    if kind == "attribute":
        return f"`{name}` {constant_text(value)}", ""  # a constant says what it is by its value
    return f"`{name}`", ""


# -- the SDK page --------------------------------------------------------------------------------------------


def imports_text(public: Public) -> str:
    """``from localpipe import X`` (else from the module that defines it), then the ``azureml`` names."""
    exported = [n.removeprefix("localpipe.") for n in public.imports if n.startswith("localpipe.")]
    azure = sorted((n for n in public.imports if not n.startswith("localpipe.")), key=lambda n: (n.count("."), n))
    module = "localpipe" if exported else public.module
    text = f"`from {module} import {exported[0] if exported else public.name}`"
    if azure:
        text += "; Azure ML's names: " + ", ".join(f"`{n}`" for n in azure)
    return text + "."


def class_section(title: str, cls: type, documented: set[type], level: int, undocumented: list[str]) -> list[str]:
    lines = [f"{'#' * level} {title}", ""]
    if issubclass(cls, enum.Enum):
        lines += [f"`{title}`", ""]
    else:
        lines += ["```", f"{title}{signature_text(local_signature(cls, 'class'), returns=False)}", "```", ""]
    doc = first_paragraph(cls)
    if doc is None:
        undocumented.append(title)
    lines += [doc or "*(no docstring yet)*", ""]
    bases = documented_bases(cls, documented)
    if bases:
        names = " and ".join(f"[`{b.__name__}`](#{anchor(b.__name__)})" for b in bases)
        lines += [f"A subclass of {names}: it has its members too.", ""]
    nested, entries, attributes = [], [], []
    for name, kind, value in members(cls, documented):
        if kind == "class" and value.__module__.startswith("localpipe"):
            nested.append((name, value))
            continue
        if kind == "instance attribute":
            attributes.append(f"`{name}`")
            continue
        entry, line = member_line(name, kind, value)
        if line is None:
            undocumented.append(f"{title}.{name}")
        entries.append(f"- {entry}: {line or '*(no docstring yet)*'}" if line != "" else f"- {entry}")
    if entries:
        lines += entries + [""]
    if attributes:
        lines += ["Attributes of an instance: " + ", ".join(attributes) + ".", ""]
    for name, value in nested:
        lines += class_section(f"{title}.{name}", value, documented, level + 1, undocumented)
    return lines


def object_section(public: Public, documented: set[type], undocumented: list[str]) -> list[str]:
    value = public.value
    if inspect.isclass(value):
        lines = class_section(public.name, value, documented, 3, undocumented)
        lines.insert(2, imports_text(public))
        lines.insert(3, "")
        return lines
    heading = [f"### {public.name}", "", imports_text(public), ""]
    if inspect.isroutine(value):
        doc = first_paragraph(value)
        if doc is None:
            undocumented.append(public.name)
        signature = signature_text(local_signature(value, "function"))
        return heading + ["```", f"{public.name}{signature}", "```", "", doc or "*(no docstring yet)*", ""]
    return heading + [f"`{public.name}` {constant_text(value)}", ""]


def anchor(title: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def sdk_markdown() -> tuple[str, list[str]]:
    """The SDK page, and the public names and members without a docstring."""
    publics = public_names()
    documented = {p.value for p in publics if inspect.isclass(p.value)}
    groups = grouped(publics)
    lines = [
        "# SDK reference",
        "",
        f"<!-- Written by `{WRITE_COMMAND}` from the code; tests/test_reference_docs.py checks it. -->",
        "",
        "Every public class and function of localpipe: what `from localpipe import ...` gives and what the",
        "`azureml.*` imports of Azure ML SDK v1 code map to (`docs/azureml-imports.md`). For each, its",
        "signature, what it is, its public members with one line each, and the names it is importable as.",
        "How each member compares with the Azure ML SDK's own (the same, different and why, missing):",
        "[azureml-compat.md](../azureml-compat.md). The command line: [cli.md](cli.md).",
        "",
    ]
    for title, members_of_group in groups:
        names = ", ".join(f"[`{p.name}`](#{anchor(p.name)})" for p in members_of_group)
        lines.append(f"- [{title}](#{anchor(title)}): {names}")
    lines.append("")
    undocumented: list[str] = []
    for title, members_of_group in groups:
        lines += [f"## {title}", ""]
        for public in members_of_group:
            lines += object_section(public, documented, undocumented)
    return "\n".join(lines).rstrip() + "\n", undocumented


# -- the CLI page ------------------------------------------------------------------------------------------


def help_markdown(text: str) -> list[str]:
    """click's help text as Markdown: its paragraphs, and each ``\\b`` block's indented lines as code."""
    lines: list[str] = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        block = paragraph.split("\n")
        if block[0].strip() != "\b":
            lines += [" ".join(" ".join(block).split()), ""]
            continue
        code: list[str] = []
        for line in block[1:]:
            if line.startswith(" "):
                code.append(line.strip())
                continue
            if code:
                lines += ["```console", *code, "```", ""]
                code = []
            lines += [line, ""]
        if code:
            lines += ["```console", *code, "```", ""]
    return lines


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def command_section(command, context, level: int) -> list[str]:
    import click

    path = context.command_path
    pieces = command.collect_usage_pieces(context)
    if isinstance(command, click.Group):  # click 8.5 marks an optional command ([COMMAND]), 8.4 does not
        pieces[-1] = "[COMMAND] [ARGS]..." if command.invoke_without_command else "COMMAND [ARGS]..."
    usage = " ".join(pieces)
    lines = [f"{'#' * level} {path}", "", "```console", f"{path} {usage}".rstrip(), "```", ""]
    lines += help_markdown(command.help or "")
    help_option = command.get_help_option(context)
    options = [p for p in command.get_params(context) if isinstance(p, click.Option) and p is not help_option]
    records = [r for r in (o.get_help_record(context) for o in options) if r is not None]
    if records:
        lines += ["| option | what it does |", "|---|---|"]
        lines += [f"| `{opts}` | {cell(help_text)} |" for opts, help_text in records]
        lines.append("")
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            sub = command.commands[name]
            if sub.hidden:
                continue
            lines += command_section(sub, click.Context(sub, info_name=name, parent=context), level + 1)
    return lines


def cli_markdown() -> str:
    import click

    from localpipe.cli import cli

    root = click.Context(cli, info_name="localpipe")
    lines = [
        "# Command-line reference",
        "",
        f"<!-- Written by `{WRITE_COMMAND}` from the click commands; tests/test_reference_docs.py checks it. -->",
        "",
        "Every `localpipe` command with its options, as `localpipe COMMAND --help` prints them (each",
        "command takes `-h` / `--help`). The README's table says what each is for in a line; exit codes:",
        "0 success, 1 a step failed, 2 an invalid pipeline or command line, 130 interrupted or canceled.",
        "The Python API is in [sdk.md](sdk.md).",
        "",
    ]
    lines += command_section(cli, root, 2)
    return "\n".join(lines).rstrip() + "\n"


# -- the command -----------------------------------------------------------------------------------------------


def pages() -> dict[Path, str]:
    return {SDK_PAGE: sdk_markdown()[0], CLI_PAGE: cli_markdown()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the pages")
    args = parser.parse_args(argv)
    stale = []
    for path, text in pages().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for name in sdk_markdown()[1]:
        print(f"no docstring: {name}", file=sys.stderr)
    for path in stale:
        print(f"{'wrote' if args.write else 'out of date'}: {path.relative_to(REPO)}")
    return 1 if stale and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
