"""A run's files (``Run.upload_file``, ``get_file_names``, ``download_file``, ...), as a part of ``RunBase``.

A run's files are those of its step: what the step wrote to ``./outputs`` and ``./logs`` (moved by
the scheduler into ``.localpipe/runs/RUN/STEP/files/`` when it ends), what it uploaded there, and
its stdout and stderr under Azure ML's names. A reused step's are those of the step run it reused.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from localpipe.errors import UsageError, UserErrorException

# The step's stdout and stderr among its files, where Azure ML keeps a run's user logs.
LOG_FILES = {"user_logs/std_out.txt": "stdout.log", "user_logs/std_err.txt": "stderr.log"}


class RunFiles:
    """The file members of ``Run``; the class using it gives ``_step``, ``_step_folder``, ``_history``."""

    # -- files -------------------------------------------------------------------------------------
    def upload_file(self, name, path_or_stream, datastore_name=None):
        """Keep a file among the run's files under ``name`` (a relative path)."""
        target = self._file_target(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if hasattr(path_or_stream, "read"):
            data = path_or_stream.read()
            target.write_bytes(data.encode() if isinstance(data, str) else data)
        else:
            if not os.path.isfile(path_or_stream):
                raise UserErrorException(f'upload_file("{name}"): {path_or_stream} is not a file')
            shutil.copyfile(path_or_stream, target)
        return str(target)

    def upload_files(self, names, paths, return_artifacts=False, timeout_seconds=None, datastore_name=None):
        """Keep each file of ``paths`` among the run's files under the name at the same place in ``names``."""
        if len(names) != len(paths):
            raise TypeError(f"names and paths must be lists of equal lengths ({len(names)} and {len(paths)})")
        return [
            self.upload_file(n, p) for n, p in zip(names, paths)
        ]  # lengths checked above (strict= needs 3.10: a step may run on 3.8)

    def upload_folder(self, name, path, datastore_name=None):
        """Keep every file of the folder ``path`` among the run's files, under ``name/``."""
        if not os.path.isdir(path):
            raise UserErrorException(f'upload_folder("{name}"): {path} is not a folder')
        uploaded = []
        for folder, _, files in os.walk(path):
            for file in files:
                relative = os.path.relpath(os.path.join(folder, file), path)
                uploaded.append(self.upload_file(f"{name.rstrip('/')}/{relative}", os.path.join(folder, file)))
        return uploaded

    def get_file_names(self) -> list[str]:
        """The run's files: ``outputs/...``, ``logs/...``, what it uploaded, and its
        ``user_logs/std_out.txt`` and ``std_err.txt``, sorted."""
        return sorted(self._files())

    def download_file(self, name, output_file_path=None, _validate_checksum=False) -> None:
        """Copy the run's file ``name`` to ``output_file_path`` (a file, or a folder to put it in;
        default: its base name in the current folder)."""
        files = self._files()
        if name not in files:
            raise UserErrorException(
                f'run {self.id} has no file "{name}": its files are {", ".join(sorted(files)) or "none"}'
            )
        target = Path(output_file_path or os.path.basename(name))
        if target.is_dir():
            target = target / os.path.basename(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files[name], target)

    def download_files(self, prefix=None, output_directory=None, output_paths=None, batch_size=100,
                       append_prefix=True, timeout_seconds=None) -> None:  # fmt: skip
        """Copy the run's files whose names start with ``prefix`` into ``output_directory`` (default:
        the current folder), keeping their paths (without ``prefix`` when ``append_prefix`` is False)."""
        names = sorted(n for n in self._files() if not prefix or n.startswith(prefix))
        if prefix and not names:
            raise UserErrorException(f'run {self.id} has no file under "{prefix}": see run.get_file_names()')
        if output_paths is not None and len(output_paths) != len(names):
            raise UserErrorException(f"output_paths has {len(output_paths)} paths for {len(names)} files")
        for index, name in enumerate(names):
            relative = name if append_prefix or not prefix else name[len(prefix) :].lstrip("/")
            target = output_paths[index] if output_paths else os.path.join(output_directory or ".", relative)
            self.download_file(name, target)

    def _file_roots(self) -> list[Path]:
        """The folders holding the run's files: its own, after those of the step run it reused."""
        step = self._step()
        if step is None:
            return []
        roots = [self._step_folder() / "files"]
        if step.get("reused_from_step_run"):
            origin = self._history.runs.step_run(step["reused_from_step_run"])
            roots.insert(0, self._history.layout.step_dir(origin["run"], origin["name"]) / "files")
        return roots

    def _log_paths(self) -> dict[str, Path]:
        if self._step() is None:
            return {}
        folder = self._step_folder()
        return {name: folder / log for name, log in LOG_FILES.items() if (folder / log).exists()}

    def _files(self) -> dict[str, Path]:
        """Each file's name -> its path."""
        found: dict[str, Path] = {}
        for root in self._file_roots():
            for folder, _, names in os.walk(root):
                for file in names:
                    path = Path(folder, file)
                    found[path.relative_to(root).as_posix()] = path
        return {**found, **self._log_paths()}  # dict | needs 3.9: a step may run on 3.8

    def _file_target(self, name: str) -> Path:
        if self._step() is None:
            raise UsageError(
                f"run {self.id} is a pipeline run: files belong to its steps; upload on a step run "
                "(Run.get_context() in the step, or run.find_step_run(name)[0])"
            )
        return _inside(self._step_folder() / "files", name)


def _inside(root: Path, name: str) -> Path:
    """``root/name`` for a relative file name that stays inside ``root``; UserErrorException otherwise."""
    text = str(name).replace("\\", "/")
    if not text or text.startswith("/") or ".." in text.split("/"):
        raise UserErrorException(f'"{name}" is not a run file name: use a relative path such as "outputs/model.pkl"')
    target = root / text
    within = [p for p in (*reversed(target.parents), target) if root in p.parents]  # is_relative_to needs 3.9
    if not os.path.realpath(target).startswith(os.path.realpath(root) + os.sep):  # a link the step left there
        link = next((p for p in within if p.is_symlink()), target)
        raise UserErrorException(
            f'"{name}" would be written through the link {link.relative_to(root).as_posix()}, out of the run\'s '
            "files: upload under another name"
        )
    held = next((p for p in within[:-1] if p.exists() and not p.is_dir()), None)
    if held is not None:
        raise UserErrorException(
            f'"{name}": run file {held.relative_to(root).as_posix()} is a file, which holds no others: '
            "upload under another name"
        )
    if target.is_dir():
        raise UserErrorException(
            f'"{name}" is a folder of run files: upload under a file name such as "outputs/model.pkl"'
        )
    log = LOG_FILES.get(target.relative_to(root).as_posix())
    if log is not None:
        stream = log[: -len(".log")]
        raise UserErrorException(f'"{name}" is the step\'s {stream} among its files: upload under another name')
    return target
