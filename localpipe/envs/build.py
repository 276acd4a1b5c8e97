"""Running the installer: uv where it can run (the ``uv`` package ships its binary), else the
standard library's ``venv`` and pip. Each command's output goes to the build's log."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from localpipe.errors import LocalpipeError

# Where util-linux's setpriv is installed, an installer gets a parent-death signal: killed with
# the process that started it (the scheduler), it does not go on writing into an abandoned build.
SETPRIV = shutil.which("setpriv")


class BuildFailed(LocalpipeError):
    """An environment could not be built; ``reason`` is the installer's error, or how it ended
    (``signal``, when a signal killed it)."""

    def __init__(self, reason: str, log: Path | None, signal: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.log = log
        self.signal = signal


# uv.find_uv_bin() reads sysconfig, whose variables CPython fills on first use without a lock: two
# builds starting at once in their threads saw sysconfig's EXE as None (a TypeError in uv).
_FINDING_UV = threading.Lock()
# Terminal colours: uv writes them to the log when FORCE_COLOR is set (a Jupyter kernel sets it).
_COLOURS = re.compile(r"\x1b\[[0-9;]*m")
# Plain text from uv whatever the caller's FORCE_COLOR: freeze's lines are kept as package names.
# After the subcommand, as uv takes global options: a wrapper set as LOCALPIPE_UV sees it first.
PLAIN = ("--color", "never")


def find_uv() -> str | None:
    """The uv binary: ``LOCALPIPE_UV`` ("none" for venv and pip), the ``uv`` package's, or PATH's."""
    configured = os.environ.get("LOCALPIPE_UV")
    if configured:
        return None if configured == "none" else configured
    with _FINDING_UV:
        try:
            import uv

            return uv.find_uv_bin()
        except (ImportError, FileNotFoundError):
            return shutil.which("uv")


class Installer:
    """Makes one virtual environment at ``target`` with ``base`` as its interpreter, logging to ``log``."""

    def __init__(self, log):
        self.log = log
        self.uv = find_uv()

    def create(self, base: str, target: Path) -> None:
        if self.uv:
            self._run(
                [self.uv, "venv", *PLAIN, "--relocatable", "--no-python-downloads", "--python", base, str(target)]
            )
        else:
            self._run([base, "-m", "venv", str(target)])

    def install(self, target: Path, requirements: Path) -> None:
        python = str(target / "bin" / "python")
        if self.uv:
            self._run([self.uv, "pip", "install", *PLAIN, "--no-progress", "--python", python, "-r", str(requirements)])
        else:
            self._run([python, "-m", "pip", "install", "--disable-pip-version-check", "-r", str(requirements)])

    def freeze(self, target: Path) -> list[str]:
        python = str(target / "bin" / "python")
        if self.uv:
            out = self._run([self.uv, "pip", "freeze", *PLAIN, "--python", python], capture=True)
        else:
            out = self._run([python, "-m", "pip", "freeze", "--disable-pip-version-check"], capture=True)
        return sorted(line for line in out.splitlines() if line.strip())

    def _run(self, argv: list[str], capture: bool = False) -> str:
        self.log.write(f"$ {' '.join(argv)}\n".encode())
        self.log.flush()
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "PIP_NO_INPUT": "1", "UV_NO_PROGRESS": "1"}
        try:
            proc = subprocess.Popen(
                [SETPRIV, "--pdeathsig", "KILL", "--", *argv] if SETPRIV else argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else self.log,
                stderr=self.log,
                env=env,
                start_new_session=True,  # ended as a group when the build is canceled
            )
        except OSError as exc:
            raise BuildFailed(f"{argv[0]} could not be started: {exc.strerror}", None) from None
        out, _ = proc.communicate()
        self.log.flush()
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            raise BuildFailed(f"{Path(argv[0]).name} {argv[1]} was killed by {name}", None, -proc.returncode)
        if proc.returncode != 0:
            raise BuildFailed(f"{Path(argv[0]).name} {argv[1]} exited with {proc.returncode}", None)
        return out.decode(errors="replace") if capture else ""


def last_error_line(log: Path) -> str | None:
    """The installer's error in ``log``, on one line: uv's last ``error:`` with its causes (drawn
    as a tree on a terminal), pip's last ``ERROR:``, or else the last line."""
    try:
        lines = [line.strip() for line in _COLOURS.sub("", log.read_text(errors="replace")).splitlines()]
    except OSError:
        return None
    lines = [line.lstrip("×╰─▶│├ ").strip() for line in lines if line and not line.startswith("$ ")]
    starts = [i for i, line in enumerate(lines) if line.lower().startswith("error:")]
    if not starts:
        return lines[-1] if lines else None
    parts = []
    for line in lines[starts[-1] :]:
        if line.startswith("hint:"):
            break
        parts.append(line.split(":", 1)[1].strip() if line.lower().startswith(("error:", "cause:")) else line)
    return ": ".join(part for part in parts if part)
