"""Commands that plan and run pipelines: init, submit, status."""

from __future__ import annotations

import sys
import time

import click

from localpipe.cli.common import collector_paused, count, json_option, print_json, say, stdout_gone, workspace
from localpipe.cli.progress import LiveProgress, describe_placement
from localpipe.status import RunStatus


def parse_params(values: tuple[str, ...]) -> dict[str, str]:
    from localpipe.errors import UsageError

    params = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f'--param "{item}" is not NAME=VALUE: write it like --param lr=0.1')
        params[name.strip()] = value
    return params


pipeline_file = click.argument("pipeline_file", type=click.Path(dir_okay=False))
param_option = click.option(
    "-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a PipelineParameter (repeatable)."
)


@click.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
def init(path: str) -> None:
    """Create a workspace (a .localpipe/ folder) in PATH.

    \b
    Example:
      localpipe init my-project
    """
    from pathlib import Path

    from localpipe.sdk.workspace import STATE_DIR, Workspace, workspace_above

    folder = Path(path).resolve()
    enclosing = workspace_above(folder.parent) if folder.parent != folder else None  # "/" has none above
    ws = Workspace.create(path, exist_ok=True)
    click.echo(f"workspace ready at {ws.root}")
    if enclosing is not None:
        click.echo(
            f"note: this is inside the workspace at {enclosing}; commands run in {ws.root} now use"
            f" the new one, whose runs are separate (remove {ws.root / STATE_DIR} to undo)",
            err=True,
        )


class StepPrinter:
    """Prints one line per step status change, with its reason (when output is not a terminal).
    Once stdout's reader has gone (``| head``, a pager quit), it says so in ``closed``: the run is
    canceled, as a program ends when its output is closed."""

    @property
    def closed(self) -> str | None:
        return "stdout was closed (its reader, `head` or a pager, exited)" if stdout_gone() else None

    def __init__(self, steps: list[str], prefix: str = "", failure=None, progress=None):
        self.counts: dict[str, int] = {}
        self.width = max(map(len, steps), default=0)
        self.prefix = prefix
        self.failure = failure  # step -> the lines to print under its Failed line
        self.progress = progress  # step -> its batches done, failed and left (a ParallelRunStep), or None

    def step_changed(self, step, status, reason, placement=None) -> None:
        if status.is_final:
            self.counts[status.value] = self.counts.get(status.value, 0) + 1
        stamp = time.strftime("%H:%M:%S")
        detail = reason or (describe_placement(placement) if placement else "")
        say(f"{stamp}  {self.prefix}{status.value:<10}  {step:<{self.width}}  {detail}".rstrip())
        batches = self.progress(step) if self.progress and status.is_final else None
        if batches:
            say(f"          {self.prefix}{'':<10}  {step:<{self.width}}  parallel run: {batches}")
        if status is RunStatus.FAILED and self.failure:
            for line in self.failure(step):
                say(line)

    def run_finished(self, status) -> None:
        pass

    def environment_changed(self, name, digest, state, detail) -> None:
        stamp = time.strftime("%H:%M:%S")
        say(f'{stamp}  {self.prefix}environment "{name}" ({digest[:12]}) {state}: {detail}')

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


@click.command()
@pipeline_file
@param_option
@click.option(
    "-e",
    "--experiment",
    default=None,
    help="Experiment name (default: the one the file submits to, else the file's folder name).",
)
@click.option("--detach", is_flag=True, help="Return at once, printing the run id; the run goes on in the background.")
@click.option("--regenerate-outputs", is_flag=True, help="Run every step; what they produce replaces the cache.")
@click.option("--continue-on-step-failure", is_flag=True, help="Run every step not downstream of a failed one.")
@click.pass_context
@collector_paused()
def submit(ctx, pipeline_file, params, experiment, detach, regenerate_outputs, continue_on_step_failure) -> None:
    """Run the pipeline built by PIPELINE_FILE (a .py file, or a pipeline YAML: .yml, .yaml), reusing
    every step whose inputs did not change.

    \b
    Exit codes: 0 completed, 1 a step failed, 2 invalid pipeline or command line, 130 interrupted.
    \b
    Example:
      localpipe submit examples/iris/pipeline.py --param max_iter=200
    """
    from pathlib import Path

    from localpipe.client.workspace import history_of
    from localpipe.engine.loader import load_file, naming_yaml
    from localpipe.engine.submit import prepare_run, run_in_background, run_prepared
    from localpipe.status import RunStatus

    ws = workspace(create=True, near=pipeline_file)
    history = history_of(ws)
    overrides = parse_params(params)
    loaded = load_file(pipeline_file, ws)
    name = experiment or loaded.experiment or Path(pipeline_file).resolve().parent.name
    if loaded.experiment is not None:
        click.echo(
            f'{pipeline_file} submits its pipeline itself (experiment "{loaded.experiment}"): running that '
            "submission here; the file's code after it does not run",
            err=detach,  # --detach: the run id alone on stdout
        )
    started = time.monotonic()
    warn_if_oversubscribed()
    with naming_yaml(pipeline_file):
        prepared = prepare_run(
            history,
            loaded.pipeline,
            name,
            {**loaded.parameters, **overrides},
            regenerate_outputs or loaded.options.get("regenerate_outputs", False),
            continue_on_step_failure or loaded.options.get("continue_on_step_failure", False),
            pipeline_file=str(Path(pipeline_file).resolve()),
            properties=loaded.options.get("properties"),
        )
    if detach:
        run_in_background(history, prepared.run_id)
        click.echo(prepared.run_id)  # alone on stdout, for scripts: RUN=$(localpipe submit p.py --detach)
        click.echo(
            f"run {prepared.run_id} goes on in the background: `localpipe logs {prepared.run_id} -f` follows it, "
            f"`localpipe cancel {prepared.run_id}` stops it",
            err=True,
        )
        return
    say(f"run {prepared.run_id} of experiment {name}: {count(len(prepared.graph.steps), 'step')}")
    steps = list(prepared.graph.steps)
    failure = failure_lines(history, prepared.run_id)
    progress = batches_of(history, prepared)
    if sys.stdout.isatty():
        printer = LiveProgress(steps, failure, progress)
    else:
        printer = StepPrinter(steps, failure=failure, progress=progress)
    interrupted = False
    with printer:
        try:
            status = run_prepared(history, prepared, reporter=printer)
        except KeyboardInterrupt:  # re-raised once the run is recorded Canceled: its summary all the same
            status, interrupted = RunStatus.CANCELED, True
    summary = ", ".join(f"{count} {word.lower()}" for word, count in printer.counts.items() if count)
    say(f"run {prepared.run_id} {status.value} in {time.monotonic() - started:.1f}s: {summary}")
    if interrupted:
        click.echo("interrupted", err=True)
    ctx.exit({RunStatus.COMPLETED: 0, RunStatus.CANCELED: 130}.get(status, 1))


@click.command()
@pipeline_file
@param_option
@click.option(
    "-e",
    "--experiment",
    default=None,
    help="Experiment to compare with (default: the one the file submits to, else the file's folder name).",
)
@json_option
@collector_paused()
def status(pipeline_file, params, experiment, as_json) -> None:
    """Say which steps of PIPELINE_FILE would run and why, without running anything.

    \b
    Example:
      localpipe status examples/iris/pipeline.py
    """
    from pathlib import Path

    from localpipe.client.workspace import history_of
    from localpipe.engine.loader import load_file, naming_yaml
    from localpipe.engine.preview import preview

    ws = workspace(create=True, near=pipeline_file)
    loaded = load_file(pipeline_file, ws)
    name = experiment or loaded.experiment or Path(pipeline_file).resolve().parent.name
    with naming_yaml(pipeline_file):
        rows = preview(history_of(ws), loaded.pipeline, name, {**loaded.parameters, **parse_params(params)})
    if as_json:
        print_json(rows)
        return
    width = max(len(r["step"]) for r in rows)
    for row in rows:
        click.echo(f"{row['step']:<{width}}  {row['action']:<6}  {row['reason']}")


@click.command()
@pipeline_file
@param_option
@click.option(
    "-e",
    "--experiment",
    default=None,
    help="Experiment name (default: the one the file submits to, else the file's folder name).",
)
@click.option(
    "--debounce",
    default=200,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Milliseconds of quiet after a change before rerunning.",
)
def watch(pipeline_file, params, experiment, debounce) -> None:
    """Run PIPELINE_FILE, then rerun on every save exactly the steps the change affects.

    Watches every step's source directory, every local input dataset and the pipeline file;
    ignored files (.amlignore, .gitignore, .localpipeignore) and editor swap files never
    trigger a run. Ctrl-C stops, ending every step that runs.

    \b
    Example:
      localpipe watch examples/iris/pipeline.py --param max_iter=300
    """
    from localpipe.client.workspace import history_of
    from localpipe.watch import Watcher

    ws = workspace(create=True, near=pipeline_file)

    def printer(prepared):
        failure = failure_lines(history_of(ws), prepared.run_id)
        return StepPrinter(list(prepared.graph.steps), prefix=f"run {prepared.run_id}  ", failure=failure)

    def echo(line: str) -> None:
        say(line)
        if stdout_gone():  # its reader exited: the watcher ends, as a program does when its output is closed
            watcher.stop()

    watcher = Watcher(
        ws, pipeline_file, experiment, parse_params(params), debounce / 1000, echo=echo, reporter_factory=printer
    )
    echo(f"watching {pipeline_file} (Ctrl-C to stop)")
    warn_if_oversubscribed()
    watcher.run()


def batches_of(history, prepared):
    """A step's mini-batches done, failed and left, as a line (for a ParallelRunStep; else None)."""
    from localpipe.parallel.progress import describe, read

    parallel = {name for name, spec in prepared.graph.steps.items() if spec.kind == "parallel"}
    step_dir = history.layout.step_dir
    return lambda step: describe(read(step_dir(prepared.run_id, step))) if step in parallel else None


def warn_if_oversubscribed() -> None:
    """One line on stderr when LOCALPIPE_CPUS gives steps more CPU slots than there are CPUs."""
    from localpipe.hw.host import detect_host, oversubscription

    note = oversubscription(detect_host())
    if note:
        click.echo(f"warning: {note}", err=True)


def failure_lines(history, run_id: int):
    """What to print under a step's Failed line: the end of its log and how to see all of it."""
    from localpipe.engine.logs import failure_tail

    return lambda step: failure_tail(history, run_id, step)


COMMANDS = [init, submit, status, watch]
