"""A Docker build context's digest (docs/docker.md, "A build context") through the workspace's
stat cache, without a daemon: planning calls ``resolve`` with a ``Capacity`` that carries it."""

from __future__ import annotations

import os
import time

from localpipe.content.statcache import StatCache
from localpipe.plan.environments import build_context_digest, resolve
from localpipe.plan.graph import Capacity
from localpipe.sdk.environment import DockerBuildContext, Environment


def _context(ws, project, files: int) -> Environment:
    project("ctx/Dockerfile", "FROM localpipe-test/python:3.11\nCOPY . /ctx\n")
    for i in range(files):
        project(f"ctx/data/f{i}.bin", f"{i}" * 5_000)
    hour_ago = time.time() - 3600
    for folder, _, names in os.walk(ws.root / "ctx"):  # out of the racy window: remembered once hashed
        for name in names:
            os.utime(os.path.join(folder, name), (hour_ago, hour_ago))
    return Environment.from_docker_build_context("ctx", DockerBuildContext.from_local_directory(ws, ws.root / "ctx"))


class _Counting(StatCache):
    """The workspace's stat cache, counting the files it did not know (each then read whole)."""

    def __init__(self, path):
        super().__init__(path)
        self.unknown = 0

    def lookup(self, path, st):
        found = super().lookup(path, st)
        self.unknown += found is None
        return found


def test_an_unchanged_build_context_is_planned_from_the_stat_cache_and_an_edit_is_seen(ws, project):
    env = _context(ws, project, files=20)
    path = ws.root / ".localpipe" / "statcache.bin"

    def planned(cache) -> str:
        found: list[str] = []
        digest = resolve('step "s"', env, Capacity(1, 1 << 30, stat_cache=cache), found, {})["context_digest"]
        assert found == []
        cache.save()
        return digest

    first = _Counting(path)
    digest = planned(first)
    assert first.unknown == 21 and digest == build_context_digest(str(ws.root / "ctx"), "Dockerfile")
    again = _Counting(path)  # the next planning, in another process
    assert planned(again) == digest and again.unknown == 0  # stats only: nothing read
    project("ctx/data/f3.bin", "edited")  # a new size and time
    edited = _Counting(path)
    assert planned(edited) != digest and edited.unknown == 1


def test_a_build_context_file_that_goes_away_while_it_is_hashed_is_one_line(ws, project):
    env = _context(ws, project, files=2)
    doomed = ws.root / "ctx" / "data" / "f1.bin"

    class Vanishing(StatCache):  # the file is removed between the folder's listing and its read
        def lookup(self, path, st):
            if path == str(doomed):
                doomed.unlink()
            return super().lookup(path, st)

    found: list[str] = []
    cache = Vanishing(ws.root / ".localpipe" / "statcache.bin")
    assert resolve('step "s"', env, Capacity(1, 1 << 30, stat_cache=cache), found, {}) == {
        "kind": "docker",
        "image": None,
    }
    assert found == [
        f'step "s": environment "ctx": Docker build context {ws.root / "ctx"}: {doomed} went away while it was '
        "read: put it back, or submit again"
    ]
