"""``localpipe gc --envs`` and the Docker images localpipe built (docs/docker.md, "Removing
images"), on a real daemon, with images ``FROM`` the test image of tests/test_docker.py. Each test
has a machine cache of its own: gc removes only the images its cache built, so that the other
tests' (and a developer's own) images are never touched."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from localpipe.sdk.environment import Environment
from tests.test_docker import IMAGE, _docker, _read, docker_image  # noqa: F401  (a fixture)
from tests.test_docker_images import CONTEXT_PIPELINE, _context

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_image")]  # skipped where no daemon answers

DAY = 86400.0


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """This test's own machine cache (LOCALPIPE_CACHE_DIR), for it and the commands it runs."""
    folder = tmp_path / "machine-cache"
    monkeypatch.setenv("LOCALPIPE_CACHE_DIR", str(folder))
    return folder


def _exists(tag: str) -> bool:
    return _docker("image", "inspect", tag, check=False).returncode == 0


def _stamp(cache, tag: str):
    return cache / "image-builds" / ".last-used" / tag.replace("/", "_").replace(":", "-")


def _built_ahead(ws, marker: str) -> str:
    """A Dockerfile image of about 3 MB of its own (random bytes: no layer of another test's is
    the same), built with ``Environment.build``; returns its tag."""
    env = Environment.from_dockerfile(
        f"df-{marker}", f"FROM {IMAGE}\nRUN head -c 3000000 /dev/urandom > /blob && echo {marker} {ws.root} > /m\n"
    )
    return env.build(ws).built[0]


def test_gc_envs_removes_the_images_no_step_used_for_the_duration_and_counts_the_bytes(ws, project, localpipe, cache):
    unused = _built_ahead(ws, "unused")
    project("src/marker.py", "print('marker', open('/marker').read().strip())\n")
    project("pipeline.py", CONTEXT_PIPELINE.replace('name="marker"', 'name="marker", allow_reuse=False'))
    _context(project, "used")
    localpipe("submit", "pipeline.py", check=True)
    (used,) = [e["tag"] for e in json.loads(localpipe("envs", "--images", "--json", check=True).stdout)
               if e["kind"] == "build context" and _stamp(cache, e["tag"]).exists()]  # fmt: skip
    listed = localpipe("envs", "--images", check=True).stdout
    assert "last used" in listed.splitlines()[0] and unused in listed and used in listed
    month_ago = time.time() - 40 * DAY
    for tag in (unused, used):
        os.utime(_stamp(cache, tag), (month_ago, month_ago))  # no step ran in them for 40 days
    localpipe("submit", "pipeline.py", check=True)  # until now: a step ran in the build context's image
    assert _stamp(cache, used).stat().st_mtime > time.time() - DAY
    byhand = "localpipe-dockerfile:byhand"  # a localpipe tag this cache never built
    _docker("tag", IMAGE, byhand)
    try:
        dry = localpipe("gc", "--envs", "--dry-run", check=True).stdout  # 30 days by default
        line = next(line for line in dry.splitlines() if line.startswith(f"would remove image {unused}  "))
        would = line.rsplit("  ", 1)[1]
        assert would.endswith("MiB") and float(would.split()[0]) >= 2.8  # its own layer: the 3 MB blob
        assert used not in dry and byhand not in dry and _exists(unused)
        assert dry.splitlines()[-1] == f"would free {would}: 0 environments, 1 image"

        swept = localpipe("gc", "--envs", check=True).stdout
        assert (
            f"removed image {unused}  {would}" in swept
            and swept.splitlines()[-1] == f"freed {would}: 0 environments, 1 image"
        )
        assert not _exists(unused) and not _stamp(cache, unused).exists()
        assert not (cache / "image-builds" / f"{_stamp(cache, unused).name}.log").exists()  # Environment.build's
        assert _exists(used) and _exists(byhand) and _exists(IMAGE)

        every = localpipe("gc", "--envs", "--older-than", "0s", check=True).stdout
        assert f"removed image {used}" in every and byhand not in every
        assert not _exists(used) and _exists(byhand) and _exists(IMAGE)
    finally:
        _docker("rmi", byhand, check=False)

    localpipe("submit", "pipeline.py", check=True)  # its image removed: built again
    assert "Step 2/2 : COPY marker.txt /marker" in _read(ws.root / ".localpipe/runs/3/marker/image-build.log")
    assert "marker used" in _read(ws.root / ".localpipe/runs/3/marker/stdout.log") and _exists(used)


def test_an_image_a_run_holds_or_a_container_uses_is_kept_one_removed_by_hand_is_no_problem(ws, localpipe, cache):
    from localpipe.engine.executors.docker.images import in_use

    held, used, gone = (_built_ahead(ws, name) for name in ("held", "container", "gone"))
    container = _docker("create", used, "true").stdout.strip()  # a container, even a stopped one
    _docker("rmi", gone)
    try:
        with in_use([held]):  # as a step's scheduler holds it (another process: the command's)
            dry = localpipe("gc", "--envs", "--older-than", "0s", "--dry-run", check=True).stdout
            swept = localpipe("gc", "--envs", "--older-than", "0s", check=True).stdout
        for out in (dry, swept):
            assert f"kept image {held}: a run uses it" in out and gone not in out
            assert f"kept image {used}: a container uses it (docker ps -a --filter ancestor={used} lists it; " in out
        assert _exists(held) and _exists(used)
        assert swept.splitlines()[-1] == "freed 0 B: 0 environments, 0 images"
        assert not _stamp(cache, gone).exists()  # its mark went with it
    finally:
        _docker("rm", container, check=False)
    _docker("tag", held, "mine/held:1")  # adopted: the user's tag stays, with the image
    try:
        swept = localpipe("gc", "--envs", "--older-than", "0s", check=True).stdout
        assert f"removed image {held}  0 B" in swept and f"removed image {used}" in swept
        assert not _exists(held) and not _exists(used) and _exists("mine/held:1")
    finally:
        _docker("rmi", "mine/held:1", check=False)


def test_no_daemon_or_no_docker_package_during_gc_envs_is_one_warning_and_the_environments_are_swept(
    ws, localpipe, cache, tmp_path
):
    kept = _built_ahead(ws, "nodaemon")
    absent = localpipe(
        "gc", "--envs", "--older-than", "0s", env={"DOCKER_HOST": f"unix://{ws.root}/no-docker.sock"}, check=True
    )
    assert absent.stderr.splitlines() == [
        "warning: Docker images: no Docker daemon answers (DockerException): start it (sudo dockerd, or "
        "systemctl start docker); no image was looked at"
    ]
    assert absent.stdout.splitlines()[-1] == "freed 0 B: 0 environments, 0 images"
    shadow = tmp_path / "shadow" / "docker"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'docker'\")\n")
    missing = localpipe("gc", "--envs", "--older-than", "0s", env={"PYTHONPATH": str(shadow.parent)}, check=True)
    assert missing.stderr.splitlines() == [
        "warning: Docker images not looked at: the docker Python package is not installed (pip install docker)"
    ]
    listed = localpipe("envs", "--images", env={"PYTHONPATH": str(shadow.parent)})
    assert listed.returncode == 2 and listed.stderr.splitlines() == [
        "error: --images asks the Docker daemon, through the docker Python package: pip install docker"
    ]
    assert _exists(kept)
    fresh = subprocess.run(  # a cache that never built an image: no word of Docker at all
        [sys.executable, "-m", "localpipe", "gc", "--envs"], cwd=ws.root, capture_output=True, text=True,
        env={**os.environ, "LOCALPIPE_CACHE_DIR": str(tmp_path / "other-cache"), "DOCKER_HOST": "unix:///nowhere"},
    )  # fmt: skip
    assert fresh.returncode == 0 and fresh.stderr == "" and fresh.stdout == "freed 0 B: 0 environments\n"
    localpipe("gc", "--envs", "--older-than", "0s", check=True)
    assert not _exists(kept)


class _DaemonThatDiesOnRemoval:
    """A unix socket that passes everything on to the real daemon's until a request to remove an
    image comes: then it closes every connection and answers no more (a daemon stopped half-way)."""

    def __init__(self, path):
        self.path = str(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen()
        self.dead = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.dead.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            daemon.connect("/var/run/docker.sock")
            threading.Thread(target=self._pass, args=(client, daemon, True), daemon=True).start()
            threading.Thread(target=self._pass, args=(daemon, client, False), daemon=True).start()

    def _pass(self, source, target, asking: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if asking and data.startswith(b"DELETE /"):
                    self.dead.set()
                    self.server.close()
                    break
                target.sendall(data)
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


def test_a_daemon_that_stops_answering_during_gc_envs_is_one_warning_and_removes_nothing_more(
    ws, localpipe, cache, tmp_path
):
    if not os.path.exists("/var/run/docker.sock"):
        pytest.skip("the daemon does not answer on /var/run/docker.sock, which the stand-in daemon forwards to")
    first, second = (_built_ahead(ws, name) for name in ("first", "second"))
    proxy = _DaemonThatDiesOnRemoval(tmp_path / "docker.sock")
    swept = localpipe("gc", "--envs", "--older-than", "0s", env={"DOCKER_HOST": f"unix://{proxy.path}"}, check=True)
    assert proxy.dead.is_set()
    assert swept.stderr.splitlines() == [
        "warning: Docker images: the Docker daemon stopped answering (ConnectionError): start it (sudo dockerd, "
        "or systemctl start docker)"
    ]
    assert swept.stdout.splitlines()[-1] == "freed 0 B: 0 environments, 0 images"
    assert _exists(first) and _exists(second)  # the first removal never reached the daemon
    assert _stamp(cache, first).exists() and _stamp(cache, second).exists()  # nothing forgotten half-way
    again = localpipe("gc", "--envs", "--older-than", "0s", check=True).stdout
    assert f"removed image {first}" in again and f"removed image {second}" in again
