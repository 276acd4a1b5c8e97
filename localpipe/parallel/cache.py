"""The per-mini-batch cache: each batch's result, kept under the digest of its content, in a folder
of the workspace named after everything else the result depends on (the ``family``): the source
directory's files (the entry script and what it imports), the environment, the output action,
the partition keys, the user's arguments and the side inputs' content.

Each result is appended to the family's journal as soon as its batch ends, so that a driver killed
half-way loses only the batches in flight; ``partition.json`` keeps the last run's batches, so
that a rerun cuts unchanged files into the same batches; ``digests/`` keeps the digests of the
files each step hashed itself (those the workspace's stat cache did not know), so that a rerun
hashes only the files that changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from localpipe.parallel.batches import ALGORITHM, CHUNK
from localpipe.parallel_files import DIGESTS, JOURNAL, RECORD, write_aside

WRITES_OUTPUT = "writes-output"  # in a family's folder: its script writes files to the output folder


def tree_digest(root: str) -> str:
    """The digest of every file below ``root`` (names and contents), in order."""
    hasher = hashlib.blake2b(digest_size=16)
    for folder, names, files in os.walk(root):
        names.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            hasher.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    hasher.update(chunk)
    return hasher.hexdigest()


def family_key(source: str, settings: dict) -> str:
    """The digest of what every batch's result depends on besides its own content."""
    identity = {
        "source": tree_digest(source),
        "python": [os.path.realpath(sys.executable), sys.version],
        "environment": os.environ.get("LOCALPIPE_ENVIRONMENT", ""),
        **settings,
    }
    return hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=16).hexdigest()


class BatchCache:
    """Results by batch key, in ``results.jsonl`` of ``folder`` (one family's): one line per batch,
    appended (``flush``) as soon as the driver has handled the results that came in together. A
    line cut short by a kill is skipped when read, and ended before the next is appended; a batch
    run again (two runs at once) has two lines, the same result."""

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.journal = self.folder / JOURNAL
        self.found: dict[str, dict] = {}
        self._handle: int | None = None
        self._lines: list[str] = []  # put, not written yet
        # The family's script writes files of its own to the output folder, which no batch result
        # holds: its results are never reused (a rerun's output would have only the new batches' files).
        self.writes_output = (self.folder / WRITES_OUTPUT).exists()
        try:
            text = self.journal.read_text()
        except OSError:
            return
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                self.found[entry.pop("key")] = entry
            except (ValueError, KeyError, AttributeError):
                continue  # the end of a line a killed driver was writing

    def get(self, key: str) -> dict | None:
        return None if self.writes_output else self.found.get(key)

    def mark_writes_output(self) -> None:
        """Note, before the result that showed it is appended, that the script writes to the output folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / WRITES_OUTPUT).touch()
        self.writes_output = True

    def put(self, key: str, result: dict) -> None:
        self._lines.append(json.dumps({"key": key, **result}) + "\n")
        self.found[key] = result

    def flush(self) -> None:
        """Append the results put since the last flush."""
        if not self._lines:
            return
        if self._handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._handle = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if os.fstat(self._handle).st_size and _last_byte(self.journal) != b"\n":
                os.write(self._handle, b"\n")  # end a line cut short, so that the next one is whole
        # One write of whole lines: a kill loses at most the lines being written, never one written before.
        os.write(self._handle, "".join(self._lines).encode())
        self._lines.clear()

    def close(self) -> None:
        self.flush()
        if self._handle is not None:
            os.close(self._handle)
            self._handle = None

    def partition(self) -> list[list[str]]:
        """The last run's batches (their item keys)."""
        try:
            return json.loads((self.folder / "partition.json").read_text())["batches"]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def save_partition(self, batches: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        kept = [b["items"] for b in batches if "items" in b]
        write_aside(self.folder / "partition.json", json.dumps({"batches": kept}))


def digests_file(root: str, step: str) -> Path:
    """Where the digests of the files a step's driver hashed itself last are kept (by path: size,
    time, digest; the files the workspace's stat cache knows are not), so that its next run hashes
    only the files that changed: one file per step name, for every family of the step (the side
    inputs are hashed before the family is known)."""
    return Path(root) / DIGESTS / f"{hashlib.blake2b(step.encode(), digest_size=8).hexdigest()}.json"


def stat_cache_file(root: str) -> Path:
    """The workspace's stat cache (state/layout.py: ``statcache.bin`` next to ``parallel-cache/``)."""
    return Path(root).parent / "statcache.bin"


def load_digests(path: Path) -> dict:
    """The digests kept at ``path``, if they are of the hash this environment uses."""
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return kept.get("files", {}) if isinstance(kept, dict) and kept.get("algorithm") == ALGORITHM else {}


def save_digests(path: Path, digests: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_aside(path, json.dumps({"algorithm": ALGORITHM, "files": digests}))


def write_record(folder: Path, family: str, digests: Path, keys: list[str] | None) -> None:
    """Say in the step's ``folder`` which family and digests file its run uses and the keys of the
    results it has (None while it runs: until it ends, ``localpipe gc`` keeps the whole family)."""
    write_aside(folder / RECORD, json.dumps({"family": family, "digests": digests.name, "keys": keys}))


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)
