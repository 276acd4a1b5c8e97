"""The Docker executor: each launch in a container of its own, through the Docker SDK (this
package holds the only ``docker`` imports of localpipe, docs/docker.md; ``images.py`` builds,
lists and removes the images steps run in).

A launch for it carries ``Launch.container`` (made by ``engine/workdir.py``'s ``containerize``):
the image (or a Dockerfile to build it from), the host paths to bind at the same paths (so that
every path in the step's argv and environment holds inside), which of them are read-only, the
variables to pass, the user, the limits, the GPUs and the labels. Each launch has a thread that
creates the container, attaches to its streams before starting it (so that nothing is missed,
and the daemon keeps no copy of the logs: its log driver is ``none``), copies them into the
step's logs through the supervisor's ``Log`` (masked and capped as for local steps), waits for
it, reads how it ended and removes it. Exits come back through ``wait`` as the local executor's
do; ``terminate`` stops the container (SIGTERM to the step through the container's init, SIGKILL
after the grace period). Containers carry labels naming the workspace, run and step run, so that
``remove_containers`` (recovery) finds those a killed scheduler left.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import docker
import docker.errors
from docker.types import DeviceRequest, LogConfig, Mount

from localpipe.engine.executors import RUN_LABEL, TERMINATE_GRACE_SECONDS, WORKSPACE_LABEL, Exit, Inbox, Launch
from localpipe.engine.executors.docker.images import (
    API_SECONDS,
    DAEMON_SECONDS,
    START_DAEMON,
    ImageFailed,
    build_image,
    built_tags,
    client,
    in_use,
    said,
)
from localpipe.engine.executors.local import log_limit
from localpipe.engine.executors.supervisor import Log

LOG_DRAIN_SECONDS = 5.0  # how long an ended container's streams are read for what they still hold


def daemon_status() -> str:
    """'daemon answers (version X)' or why not, in a few words."""
    try:
        found = client(DAEMON_SECONDS)
        version = found.version().get("Version", "?")
        found.close()
        return f"daemon answers (version {version})"
    except Exception as exc:  # docker raises several unrelated types for "no daemon"
        return f"no daemon answers ({type(exc).__name__})"


def machine_docker() -> dict:
    """What planning asks of this machine's daemon, asked once: ``problem`` when none answers,
    else ``gpus`` (whether it can hand GPUs to containers: the nvidia runtime) and ``image(name)``,
    the id of a local image (None when it is not here), and ``invalid(name)``, what the daemon said
    of a name that is no image reference (None for a valid one). Nothing is pulled: a missing
    image is the user's to provide (docs/docker.md)."""
    try:
        found = client(DAEMON_SECONDS)
        info = found.info()
    except Exception as exc:  # noqa: BLE001  (no daemon: several unrelated types)
        return {"problem": f"no Docker daemon answers ({type(exc).__name__}): {START_DAEMON}", "gpus": False,
                "image": lambda name: None, "invalid": lambda name: None}  # fmt: skip
    ids: dict[str, str | None] = {}
    invalid: dict[str, str] = {}

    def image(name: str) -> str | None:
        if name not in ids:
            try:
                ids[name] = found.images.get(name).id
            except docker.errors.ImageNotFound:
                ids[name] = None
            except docker.errors.APIError as exc:
                if not exc.is_client_error():
                    raise
                ids[name] = None  # no reference: "invalid reference format: repository name must be lowercase"
                invalid[name] = said(exc).rsplit(f"{name}: ", 1)[-1]
        return ids[name]

    def invalid_name(name: str) -> str | None:
        image(name)
        return invalid.get(name)

    return {"problem": None, "gpus": "nvidia" in (info.get("Runtimes") or {}), "image": image,
            "invalid": invalid_name}  # fmt: skip


def remove_containers(workspace: str, run_id: int) -> int:
    """Remove (killing them first) the containers of run ``run_id`` of ``workspace``: those a
    scheduler killed without a chance to clean up left running. Returns how many; 0 when no daemon
    answers (there is then nothing it could be running)."""
    try:
        found = client(DAEMON_SECONDS)
        containers = found.containers.list(
            all=True, filters={"label": [f"{WORKSPACE_LABEL}={workspace}", f"{RUN_LABEL}={run_id}"]}
        )
    except Exception:  # noqa: BLE001  (no daemon, no containers)
        return 0
    for container in containers:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
    return len(containers)


class _Step:
    def __init__(self, launch: Launch):
        self.launch = launch
        self.container = None  # once created
        self.stop_grace: float | None = None  # terminate was asked, with this grace
        self.stopping = threading.Event()  # set with stop_grace: a build under way is not waited for
        self.thread: threading.Thread | None = None


class DockerExecutor:
    """Runs each launch in a container; an ``Executor``. ``wake`` and ``terminate`` may be called
    from any thread; a thread per launch talks to the daemon."""

    def __init__(self):
        self._inbox = Inbox()
        self._steps: dict[str, _Step] = {}
        self._lock = threading.RLock()
        self._client = None
        self._log_limit = log_limit()

    def prepare(self, python: tuple[str, dict[str, str]] | None = None) -> None:
        """Nothing to start ahead: each launch's thread talks to the daemon."""

    def start(self, launch: Launch) -> None:
        step = self._steps[launch.key] = _Step(launch)
        step.thread = threading.Thread(target=self._run, args=(step,), name=f"docker-{launch.key}", daemon=True)
        step.thread.start()

    def wait(self, timeout: float | None) -> list[Exit]:
        exits = self._inbox.take(timeout)
        for found in exits:
            self._steps.pop(found.key, None)
        return exits

    def wake(self) -> None:
        self._inbox.wake()

    def terminate(self, key: str, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """Stop ``key``'s container: SIGTERM, SIGKILL after ``grace`` seconds. Returns at once."""
        step = self._steps.get(key)
        if step is None:
            return
        with self._lock:
            if step.stop_grace is not None:
                return
            step.stop_grace = grace
            step.stopping.set()
            container = step.container
        if container is not None:  # else its thread stops it as soon as it is created
            threading.Thread(target=_stop, args=(container, grace), daemon=True).start()

    def terminate_all(self, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """Stop every container and return once all have ended (their exits are kept for ``wait``)."""
        steps = list(self._steps.values())
        for step in steps:
            self.terminate(step.launch.key, grace)
        for step in steps:
            step.thread.join()

    def close(self) -> None:
        """Remove the containers still running (none outlives its scheduler), then the descriptors."""
        with self._lock:
            running = [s.container for s in self._steps.values() if s.container is not None]
        threads = [threading.Thread(target=_remove, args=(c,), daemon=True) for c in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(API_SECONDS)
        self._inbox.close()

    def fileno(self) -> int:
        return self._inbox.fileno()

    # -- one launch, in its thread -------------------------------------------------------------
    def _run(self, step: _Step) -> None:
        launch = step.launch
        try:
            with in_use(built_tags(launch.container)):  # gc leaves its images until its container is gone
                result = self._contain(step)
        except docker.errors.DockerException as exc:
            result = Exit(launch.key, None, None, None, error=f"Docker: {said(exc)}")
        except Exception as exc:  # noqa: BLE001  (a bug or an odd value: this step's reason says which)
            result = Exit(launch.key, None, None, None, error=f"the Docker executor could not handle it: {exc!r}")
        self._inbox.put(result)

    def _contain(self, step: _Step) -> Exit:
        launch, spec = step.launch, step.launch.container
        with self._lock:
            if self._client is None:
                self._client = client()
        image = self._image(spec, step)
        if isinstance(image, Exit):
            return image
        gpus = spec.get("gpus") or []
        container = self._client.containers.create(
            image,
            command=launch.argv,
            entrypoint=[],  # the step's command itself, not as arguments of the image's ENTRYPOINT
            working_dir=launch.cwd,
            environment=spec["env"],
            user=spec["user"],
            labels=spec["labels"],
            mounts=[Mount(path, path, type="bind", read_only=ro) for path, ro in spec["mounts"]],
            mem_limit=launch.memory_limit,
            memswap_limit=launch.memory_limit,  # no swap beyond the limit: over it, the step is killed
            nano_cpus=int(spec["cpus"] * 1e9) if spec.get("cpus") else None,
            shm_size=spec.get("shm_size"),
            device_requests=[DeviceRequest(device_ids=gpus, capabilities=[["gpu"]])] if gpus else None,
            init=True,  # the step is not PID 1, which would ignore SIGTERM; its children are reaped
            log_config=LogConfig(type=LogConfig.types.NONE),  # the daemon keeps no unmasked copy
            stdin_open=False,
            tty=False,
            detach=True,
        )
        with self._lock:
            step.container = container
            stop = step.stop_grace
        try:
            if stop is not None:  # terminated before it was created: it never starts
                return Exit(launch.key, None, signal.SIGTERM, None)
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=False, demux=True)
            logs = [Log(-1, path, self._log_limit, launch.masked) for path in (launch.stdout, launch.stderr)]
            copier = threading.Thread(target=_copy, args=(stream, logs), daemon=True)
            copier.start()
            container.start()
            with self._lock:
                stop = step.stop_grace
            if stop is not None:  # asked as it started: the stop then sent may have found it not yet running
                _stop(container, stop)
            status = container.wait()
            copier.join(LOG_DRAIN_SECONDS)
            for log in logs:
                log.close()
            container.reload()
            state = container.attrs["State"]
            code = status.get("StatusCode", state.get("ExitCode"))
            oom = bool(state.get("OOMKilled"))
            if oom:  # the kernel killed it at its memory limit
                code, number = None, signal.SIGKILL
            elif code is not None and code > 128 and code - 128 in signal.valid_signals():
                # the container's init reports the step killed by signal N as 128 + N, and Docker a
                # container killed from outside (docker kill, docker stop) the same way
                code, number = None, code - 128
            else:
                number = None
            return Exit(
                launch.key, code, number, None, pid=state.get("Pid") or None,
                log_error=next((log.error for log in logs if log.error), None), oom_killed=oom,
            )  # fmt: skip
        finally:
            _remove(container)

    def _image(self, spec: dict, step: _Step) -> str | Exit:
        """The image to run (``build_image``); its build's output is in the step's ``image-build.log``.
        The build runs in a thread of its own, so that a cancel or time limit ends the step at once
        (as SIGTERM before it started) rather than when a build of many minutes ends: the build goes
        on meanwhile, tagged only if it succeeds, and ends with the scheduler's connection."""
        launch = step.launch
        found: dict = {}

        def build() -> None:
            try:
                found["image"] = build_image(self._client, spec, Path(launch.stderr).with_name("image-build.log"))[0]
            except BaseException as exc:  # noqa: BLE001  (handed to the step's thread)
                found["error"] = exc
            finally:
                step.stopping.set()  # wakes the step's thread: done

        threading.Thread(target=build, name=f"docker-build-{launch.key}", daemon=True).start()
        step.stopping.wait()
        if not found:  # terminated while its image was building: it never starts
            return Exit(launch.key, None, signal.SIGTERM, None)
        if isinstance(found.get("error"), ImageFailed):
            return Exit(launch.key, None, None, None, error=str(found["error"]))
        if "error" in found:
            raise found["error"]
        return found["image"]


def _copy(stream, logs: list[Log]) -> None:
    """Copy a demultiplexed attach stream into the step's two logs as it comes."""
    try:
        for out, err in stream:
            if out:
                logs[0].feed(out)
            if err:
                logs[1].feed(err)
    except Exception:  # noqa: BLE001  (the connection closed as the container was removed: its end)
        pass


def _stop(container, grace: float) -> None:
    try:
        container.stop(timeout=max(1, round(grace)))
    except docker.errors.DockerException:
        pass  # gone already


def _remove(container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.DockerException:
        pass  # gone already


EXECUTOR = DockerExecutor
