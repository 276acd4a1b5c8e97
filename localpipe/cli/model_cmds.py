"""The model registry from the command line: ``localpipe models [NAME]`` (docs/models.md)."""

from __future__ import annotations

import click

from localpipe.cli.common import clock, history, json_option, print_json, say, size, table


@click.command()
@click.argument("name", required=False)
@json_option
def models(name, as_json) -> None:
    """List registered models; with NAME, its versions: tags, properties, the run and step that
    registered each, its datasets, size and digest.

    \b
    Example:
      localpipe models
      localpipe models iris-classifier --json
    """
    from localpipe.errors import NotFoundError

    found = history().models.find({"name": name})
    if name is not None and not found:
        raise NotFoundError(f'model "{name}" is not registered: see `localpipe models`')
    if as_json:
        print_json(found)
        return
    if not found:
        say("no models registered: Model.register(ws, model_path, model_name) or run.register_model registers one")
        return
    if name is None:
        _summary(found)
        return
    for row in found:
        say(
            f"{row['name']} version {row['version']}  {clock(row['created_at'])}  {size(row['size'])}  "
            f"{row['files']} file{'s' if row['files'] != 1 else ''}  {row['digest'][:12]}  {_made_by(row)}"
        )
        for label, values in (("tags", row["tags"]), ("properties", row["properties"])):
            if values:
                say(f"  {label}: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())))
        for link in row["datasets"]:
            say(f"  {_dataset_line(link)}")
        if row["description"]:
            say(f"  description: {row['description']}")


def _summary(found: list[dict]) -> None:
    """The latest version of each name (``found`` is newest first), with how many it has."""
    latest: dict[str, dict] = {}
    counts: dict[str, int] = {}
    for row in found:
        latest.setdefault(row["name"], row)
        counts[row["name"]] = counts.get(row["name"], 0) + 1
    rows = [
        [r["name"], r["version"], counts[r["name"]], size(r["size"]), clock(r["created_at"]), _made_by(r)]
        for r in sorted(latest.values(), key=lambda r: r["name"])
    ]
    table(rows, ["NAME", "LATEST", "VERSIONS", "SIZE", "REGISTERED", "BY"])


def _made_by(row: dict) -> str:
    if row["pipeline_run"] is None:
        return "registered by hand"
    return f'registered by run {row["pipeline_run"]} (step "{row["step"]}")'


def _dataset_line(link: dict) -> str:
    role = {"sample_input": "sample input", "sample_output": "sample output"}.get(link["role"], "dataset")
    scenario = f" ({link['scenario']})" if link["scenario"] else ""
    what = (
        f"{link['name']} version {link['version']}" if link["name"] else ", ".join(link["paths"]) + " (not registered)"
    )
    return f"{role}{scenario}: {what}"


COMMANDS = [models]
