"""The Ray executor: each launch one Ray task on a Ray cluster (the only ``ray`` import of
localpipe, docs/scale-out.md).

The scheduler stays where it is, the one process that decides, records and commits; this module
is its Ray driver. A launch for it carries ``Launch.ray`` (the cluster's address and what the
task asks Ray for: CPUs, GPUs, custom resources, runtime_env). One thread, the driver's, connects
(``ray.init``: to the cluster at the address, or a local Ray started for the process when it is
None), submits each launch as a task and cancels tasks; each task's end comes back through a
callback on its ``ObjectRef``'s future, as an ``Exit`` for ``wait`` (the local and Docker
executors' protocol), so there is no polling and no thread per step on the submitting machine.

On the node, the task runs the step with a ``LocalExecutor`` of its worker process: the step is
the child of a step supervisor there, exactly as on this machine, so its logs (masked, capped)
are written into its folder on the shared workspace, its whole process tree ends with it, and
everything dies with the worker (the supervisor ends the steps when its socket closes). Ray sets
the GPUs the task got; they become the step's ``CUDA_VISIBLE_DEVICES``.

``terminate`` cancels the task politely (``ray.cancel``: the task ends the step's processes with
SIGTERM, SIGKILL after the grace period), then, if it has not ended, by force
(``ray.cancel(force=True)`` kills the worker). A task ends no other way than with the step:
Ray never retries it (``max_retries=0``); localpipe's retry rules apply to the step.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
import shutil
import signal
import socket
import threading
import time
import uuid
from dataclasses import replace
from functools import partial
from pathlib import Path

import ray
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from localpipe.engine.executors import TERMINATE_GRACE_SECONDS, Exit, Inbox, Launch
from localpipe.engine.executors.local import LocalExecutor

LOCAL_OBJECT_STORE_BYTES = 100 * 2**20  # a local Ray's object store: only exits travel through it, never data
CONNECT_SECONDS = 5.0  # how long the cluster's address has to accept a connection
CHECK_SECONDS = 120.0  # how long a node has to answer the visibility check (a cold worker takes seconds)
FORCE_MARGIN_SECONDS = 2.0  # after the grace period, how long a politely canceled task has before it is killed
POLL_SECONDS = 0.1  # how often a task looks up from its step for a cancel (Ray raises it between bytecodes)
_connect_lock = threading.Lock()
_NOBODY = object()
_connected_to = _NOBODY  # the address this process connected with (not the caller's own ray.init)
_CLOSE = object()


def connect(address: str | None, recheck: bool = False) -> None:
    """Make this process a driver of the Ray cluster at ``address`` (None: start a local Ray, which
    lives as long as the process), unless it already is one. Ray's own logs stay in its folder.
    ``recheck`` (once a run: a watcher's or a notebook's connection outlives runs): a cluster
    restarted at the address since this process connected is connected to anew."""
    global _connected_to
    with _connect_lock:
        if ray.is_initialized():
            if _connected_to not in (_NOBODY, address):  # _NOBODY: the caller's own ray.init is taken
                raise ConnectionError(
                    f"this process drives the Ray cluster at {_connected_to or 'a local Ray'} already, and a "
                    "process drives one cluster: give every Ray target of the run the same address"
                )
            if not (recheck and address is not None and _connected_to == address and _restarted(address)):
                return
            ray.shutdown()  # its driver would abort the process at its next call (WrongClusterID)
            _connected_to = _NOBODY
        # Ray's messages on connecting (its token, where it started) would interleave with the run's lines.
        logging.getLogger("ray").setLevel(logging.ERROR)
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if address is None:  # with what validation counted for it, not Ray's own count
            here = local_resources()
            ray.init(
                address="local", num_cpus=here["CPU"], num_gpus=here["GPU"], include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet,
            )  # fmt: skip
        else:
            _answers(address)
            if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
                raise Unusable(
                    "a ray:// address needs Ray's client, which is not installed here: pip install 'ray[client]', "
                    "or give the cluster's GCS address (HOST:6379) to connect as a driver"
                )
            ray.init(address=address, **quiet)
        _connected_to = address


def _restarted(address: str) -> bool:
    """Whether the cluster at ``address`` is another than the one this process connected to (its
    head restarted: a new cluster id). Raises ConnectionError when nothing answers there."""
    _answers(address)
    node = getattr(ray._private.worker.global_worker, "node", None)
    if node is None:
        return False  # a Ray client's connection (ray://): its server keeps it
    return ray._raylet.GcsClient(address=node.gcs_address).cluster_id != node.cluster_id


def _answers(address: str) -> None:
    """Raise ConnectionError unless a cluster's gRPC server (its GCS) answers at ``address``'s host
    and port: Ray itself retries for minutes an address where nothing listens, or where another
    service does (the dashboard's port, a web server)."""
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # an IPv6 address, as Ray writes one: [::1]:6379
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS) as probe:
            if address.startswith("ray://") or os.environ.get("RAY_USE_TLS", "0") not in ("", "0"):
                return  # Ray's client server, or TLS first: only that something listens is checked
            answer = _http2_settings(probe)
            # Without RAY_AUTH_MODE=token, ray.init sends no token to an explicit address: a cluster
            # that wants one (`ray start`'s default) would be retried for 20 s, logging each refusal.
            wants_token = (
                answer is None and os.environ.get("RAY_AUTH_MODE", "").lower() != "token" and _wants_token(probe)
            )
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {where}: {exc.strerror or exc}") from None
    if answer is not None:
        raise ConnectionError(f"the service at {where} is not a Ray cluster's GCS ({answer})")
    if wants_token:
        raise Unusable(
            f"the Ray cluster at {where} asks for token authentication: set RAY_AUTH_MODE=token here, with the "
            "cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN (docs/scale-out.md)"
        )


class Unusable(ConnectionError):
    """Something answers at the address, but this process cannot use it as a Ray cluster: why and
    the fix, stated in full (a token it wants, Ray's client not installed)."""


# An HTTP/2 client's first bytes (RFC 9113, 3.4), with an empty SETTINGS frame: gRPC, which Ray's
# GCS speaks, answers with a SETTINGS frame of its own.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _http2_settings(connection: socket.socket) -> str | None:
    """None when the server at ``connection`` answers an HTTP/2 preface with a SETTINGS frame, as
    a gRPC server does; else what it did instead."""
    connection.sendall(_HTTP2_PREFACE)
    header = b""
    deadline = time.monotonic() + CONNECT_SECONDS
    try:
        while len(header) < 9:  # a frame header: length (3 bytes), type, flags, stream (4)
            connection.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = connection.recv(9 - len(header))
            if not chunk:
                return "it closed the connection without answering gRPC"
            header += chunk
    except TimeoutError:
        return f"it did not answer gRPC within {CONNECT_SECONDS:g} s"
    except OSError as exc:
        return f"it dropped the connection without answering gRPC ({exc.strerror or exc})"
    if header[3] != 4 or header[5:9] != bytes(4) or int.from_bytes(header[:3], "big") % 6:
        start = header.split(b"\r\n")[0].decode("ascii", "replace")
        return f"it does not speak gRPC: it answered {start!r}"
    try:  # the frame's settings, read past so that the next frame is read from its start
        left = int.from_bytes(header[:3], "big")
        while left:
            chunk = connection.recv(left)
            if not chunk:
                break
            left -= len(chunk)
    except OSError:
        pass
    return None


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _header(name: str, value: str) -> bytes:
    """An HPACK literal header field, not indexed, neither string Huffman-coded (RFC 7541, 6.2.2)."""
    return bytes([0, len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


# A gRPC call with no token to a method of every GCS (an empty GetClusterIdRequest), on stream 1.
_CLUSTER_ID_CALL = _frame(
    1, 4, 1,  # HEADERS, END_HEADERS
    b"".join(
        _header(name, value)
        for name, value in [
            (":method", "POST"), (":scheme", "http"), (":path", "/ray.rpc.NodeInfoGcsService/GetClusterId"),
            (":authority", "gcs"), ("content-type", "application/grpc"), ("te", "trailers"),
        ]
    ),
) + _frame(0, 1, 1, bytes(5))  # DATA, END_STREAM: one empty message  # fmt: skip


def _wants_token(connection: socket.socket) -> bool:
    """Whether the GCS at ``connection`` (past its SETTINGS) refuses a call without a token: its
    answer's headers say grpc-status 16 (UNAUTHENTICATED), as gRPC's own server writes them (not
    Huffman-coded). False for any other answer, or none within CONNECT_SECONDS."""
    received = b""
    deadline = time.monotonic() + CONNECT_SECONDS
    try:
        connection.sendall(_CLUSTER_ID_CALL)
        while time.monotonic() < deadline and len(received) < 65536:
            connection.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
            while len(received) >= 9 and len(received) >= 9 + int.from_bytes(received[:3], "big"):
                length, kind, stream = int.from_bytes(received[:3], "big"), received[3], received[5:9]
                payload, received = received[9 : 9 + length], received[9 + length :]
                if kind == 1 and stream == bytes([0, 0, 0, 1]):  # HEADERS of the call's answer
                    return b"grpc-status\x0216" in payload
                if kind == 3 and stream == bytes([0, 0, 0, 1]):  # RST_STREAM
                    return False
    except OSError:
        pass
    return False


def cluster(address: str | None, paths: list[str], pythons: list[str]) -> dict:
    """What planning asks of the Ray cluster at ``address``: ``problem`` (why it cannot run steps,
    or None), ``nodes`` (each alive node's ``name`` and ``resources``) and ``unseen`` (a line for
    each node that cannot see one of ``paths`` or lacks one of ``pythons``, the interpreters steps
    run on).

    ``paths`` are checked by content, not by name: a file of random content is written in each and
    a task on every node must read it back, so that a node with a same-named local folder is
    caught. None (a local Ray for the run) is this machine: nothing is started to ask it.
    """
    if address is None:
        return {"problem": None, "nodes": [{"name": "this machine", "resources": local_resources()}], "unseen": []}
    try:
        connect(address, recheck=True)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
    except Unusable as exc:
        return {"problem": str(exc), "nodes": [], "unseen": []}
    except Exception as exc:  # noqa: BLE001  (ray raises several unrelated types for "no cluster there")
        return {"problem": f"no Ray cluster answers at {address} ({_said(exc)}): start it (ray start --head) "
                           "or fix the target's address", "nodes": [], "unseen": []}  # fmt: skip
    found = [{"name": n["NodeManagerAddress"], "resources": n.get("Resources", {})} for n in nodes]
    return {"problem": None, "nodes": found, "unseen": _unseen(nodes, paths, pythons)}


def local_resources() -> dict:
    """What a local Ray has: this machine's CPU slots (LOCALPIPE_CPUS, a cpuset) and GPUs, no more
    than CUDA_VISIBLE_DEVICES names (Ray gives it no others). Validation counts them, and a local
    Ray is started with them: with fewer, a step that passed would wait in Ray's queue for ever."""
    from localpipe.hw.gpus import detect_gpus
    from localpipe.hw.host import detect_host

    gpus = len(detect_gpus().gpus)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = min(gpus, len([device for device in visible.split(",") if device.strip()]))
    return {"CPU": detect_host().cpus, "GPU": gpus}


def _unseen(nodes: list[dict], paths: list[str], pythons: list[str]) -> list[str]:
    tokens = {}
    try:
        for path in paths:
            token = uuid.uuid4().hex
            Path(path, f".ray-check-{token}").write_text(token)
            tokens[path] = token
        checks = [  # by node id: nodes may share an address (several on one machine)
            (
                node["NodeManagerAddress"],
                sees.options(
                    num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
                ).remote(tokens, pythons, os.environ.get("PATH", os.defpath)),
            )
            for node in nodes
        ]
        ready, _ = ray.wait([ref for _, ref in checks], num_returns=len(checks), timeout=CHECK_SECONDS)
        lines = []
        for name, ref in checks:
            if ref not in ready:
                lines.append(f"Ray node {name} did not answer within {CHECK_SECONDS:g}s whether it sees the workspace")
                continue
            try:
                missing = ray.get(ref)
            except ray.exceptions.RayError as exc:
                lines.append(f"Ray node {name} cannot run localpipe's task ({_said(exc)}): install localpipe there")
                continue
            lines += [
                f"Ray node {name} has no {path}, the Python steps run on: install the same Python, with "
                "localpipe, at that path on every node (docs/scale-out.md)"
                if path in pythons
                else f"Ray node {name} does not see {path} as this machine does: mount it at the same path on "
                "every node (docs/scale-out.md)"
                for path in missing
            ]
        return lines
    finally:
        for path, token in tokens.items():
            Path(path, f".ray-check-{token}").unlink(missing_ok=True)


def _sees(tokens: dict[str, str], pythons: list[str], search: str | None = None) -> list[str]:
    """On a node: the paths of ``tokens`` whose check file it cannot read back, and the ``pythons``
    it cannot run; one named without a folder (an ``interpreter_path`` of "python3") is looked for
    on ``search``, the submitting process's PATH, which its steps get (None: the node's own)."""
    missing = []
    for path, token in tokens.items():
        try:
            if Path(path, f".ray-check-{token}").read_text() != token:
                missing.append(path)
        except OSError:
            missing.append(path)
    return missing + [python for python in pythons if shutil.which(python, path=search) is None]


# Remote functions under names of their own: each function is then found by its module and name,
# so Ray sends a reference to it (the node imports localpipe), not a copy with globals of its own.
sees = ray.remote(max_retries=0)(_sees)


# -- on a node: one step in its task ------------------------------------------------------------
_steps: LocalExecutor | None = None  # a worker process's own step supervisor, kept from task to task


def _run_step(launch: Launch, log_limit: int, grace: float) -> Exit:
    global _steps
    if _steps is None:
        _steps = LocalExecutor(log_limit)
    timeout = launch.ray.get("timeout")
    deadline = time.monotonic() + timeout if timeout else None
    # The GPUs Ray gave the task, numbered as Ray numbers them on this node: in the device order of
    # the node's own environment (a Ray task's), not the PCI order localpipe sets for its own GPUs.
    gpus = ",".join(str(i) for i in ray.get_runtime_context().get_accelerator_ids().get("GPU", []))
    launch.env.update(CUDA_VISIBLE_DEVICES=gpus, NVIDIA_VISIBLE_DEVICES=gpus or "void", LOCALPIPE_GPU_INDICES=gpus)
    launch.env.pop("CUDA_DEVICE_ORDER", None)
    if os.environ.get("CUDA_DEVICE_ORDER"):
        launch.env["CUDA_DEVICE_ORDER"] = os.environ["CUDA_DEVICE_ORDER"]
    _steps.start(launch)
    try:
        found = _exit_of(launch.key, deadline)
        if found is not None:
            return found
        _steps.terminate(launch.key, grace)  # its timeout: the scheduler's rule, counted from here
        return replace(_exit_of(launch.key, None), timed_out=True)
    except KeyboardInterrupt:  # ray.cancel: end the step's process tree, politely first
        _steps.terminate(launch.key, grace)
        return _exit_of(launch.key, None)


def _exit_of(key: str, deadline: float | None) -> Exit | None:
    """The step's exit, or None once ``deadline`` (monotonic) has passed without one."""
    while deadline is None or time.monotonic() < deadline:
        for found in _steps.wait(POLL_SECONDS):
            if found.key == key:
                return found
    return None


run_step = ray.remote(max_retries=0, retry_exceptions=False)(_run_step)


# -- on the submitting machine: the driver --------------------------------------------------------
class RayExecutor:
    """Runs each launch as a Ray task; an ``Executor``. ``start``, ``wait``, ``terminate_all`` and
    ``close`` belong to the scheduler's thread; ``wake`` and ``terminate`` may be called from any."""

    def __init__(self):
        from localpipe.engine.executors.local import log_limit

        self._inbox = Inbox()
        self._orders: queue.SimpleQueue = queue.SimpleQueue()  # for the driver's thread
        self._lock = threading.Condition()
        self._pending: set[str] = set()  # started, their exit not come yet
        self._canceled: set[str] = set()  # terminated by the scheduler: a canceled task is its doing
        self._log_limit = log_limit()
        self._driver = threading.Thread(target=self._drive, name="ray-driver", daemon=True)
        self._driver.start()

    def prepare(self, python: tuple[str, dict[str, str]] | None = None) -> None:
        """Nothing to start ahead: the driver's thread joins the cluster that the first launch names."""

    def start(self, launch: Launch) -> None:
        with self._lock:
            self._pending.add(launch.key)
        self._orders.put(("start", launch))

    def wait(self, timeout: float | None) -> list[Exit]:
        return self._inbox.take(timeout)

    def wake(self) -> None:
        self._inbox.wake()

    def terminate(self, key: str, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """Cancel ``key``'s task: politely, by force after ``grace`` seconds. Returns at once."""
        with self._lock:
            if key not in self._pending or key in self._canceled:
                return
            self._canceled.add(key)
        self._orders.put(("cancel", key, grace))

    def terminate_all(self, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """Cancel every task and return once all have ended (their exits are kept for ``wait``)."""
        with self._lock:
            keys = list(self._pending)
        for key in keys:
            self.terminate(key, grace)
        with self._lock:
            self._lock.wait_for(lambda: not self._pending, grace + FORCE_MARGIN_SECONDS + 10)

    def close(self) -> None:
        """Kill the tasks still running (none outlives its scheduler); the connection stays for the
        process (a local Ray with it), which a watcher's next run reuses."""
        self._orders.put((_CLOSE,))
        self._driver.join(30)
        self._inbox.close()

    def fileno(self) -> int:
        return self._inbox.fileno()

    # -- the driver's thread: every call into Ray but the callbacks ------------------------------
    def _drive(self) -> None:
        refs: dict[str, ray.ObjectRef] = {}
        forced: dict[str, float] = {}  # key -> when its task is killed unless it ended
        failure: str | None = None  # why no task can be started (the cluster did not answer)
        while True:
            due = min(forced.values(), default=None)
            try:
                order = self._orders.get(timeout=None if due is None else max(0.0, due - time.monotonic()))
            except queue.Empty:
                order = None
            if order is not None and order[0] is _CLOSE:
                for ref in list(refs.values()):  # a copy: callbacks take ended tasks out
                    _cancel(ref, force=True)
                return
            if order is not None and order[0] == "start":
                launch = order[1]
                if failure is None:
                    try:
                        connect(launch.ray["address"])
                    except Exception as exc:  # noqa: BLE001  (ray raises several unrelated types)
                        failure = f"no Ray cluster answers at {launch.ray['address'] or 'a local Ray'} ({_said(exc)})"
                if failure is not None:
                    self._ended(launch.key, Exit(launch.key, None, None, None, error=failure))
                    continue
                try:
                    refs[launch.key] = ref = self._submit(launch)
                except Exception as exc:  # noqa: BLE001  (its options, refused: this thread must live on)
                    self._ended(
                        launch.key, Exit(launch.key, None, None, None, error=f"Ray refused its task ({_said(exc)})")
                    )
                    continue
                ref.future().add_done_callback(partial(self._task_ended, launch.key, refs))
            elif order is not None and order[0] == "cancel":
                _, key, grace = order
                if (ref := refs.get(key)) is not None:  # get: a callback may take it out meanwhile
                    _cancel(ref, force=False)
                    forced[key] = time.monotonic() + grace + FORCE_MARGIN_SECONDS
            now = time.monotonic()
            for key, at in list(forced.items()):
                ref = refs.get(key)
                if ref is None:
                    del forced[key]
                elif at <= now:
                    _cancel(ref, force=True)
                    del forced[key]

    def _submit(self, launch: Launch) -> ray.ObjectRef:
        asked = launch.ray
        options = {"num_cpus": asked["cpus"], "num_gpus": asked["gpus"], "name": f"localpipe:{launch.key}"}
        if asked.get("resources"):
            options["resources"] = asked["resources"]
        if asked.get("runtime_env"):
            options["runtime_env"] = asked["runtime_env"]
        return run_step.options(**options).remote(launch, self._log_limit, TERMINATE_GRACE_SECONDS)

    def _task_ended(self, key: str, refs: dict, future) -> None:
        """A Ray callback (another thread): how the task ended, as an Exit."""
        refs.pop(key, None)
        try:
            # Without its pid: a process of another machine, which this one's recovery must not look for.
            found = replace(future.result(), pid=None)
        except ray.exceptions.TaskCancelledError:
            found = Exit(key, None, signal.SIGKILL, None, error=None if key in self._canceled else _CANCELED_ELSEWHERE)
        except Exception as exc:  # noqa: BLE001  (every way a task can fail is this step's reason)
            found = Exit(key, None, None, None, error=task_failure(exc))
        self._ended(key, found)

    def _ended(self, key: str, found: Exit) -> None:
        with self._lock:
            self._pending.discard(key)
            self._canceled.discard(key)
            self._lock.notify_all()
        self._inbox.put(found)


_CANCELED_ELSEWHERE = "its Ray task was canceled outside localpipe (ray.cancel, or its job was stopped)"


def task_failure(exc: BaseException) -> str:
    """A step's reason for a Ray task that ended without the step's exit."""
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return f"Ray's memory monitor killed the task running it, the node being short of memory ({_said(exc)})"
    if isinstance(exc, ray.exceptions.WorkerCrashedError):
        return f"the Ray worker running it died ({_said(exc)})"
    if isinstance(exc, ray.exceptions.NodeDiedError | ray.exceptions.LocalRayletDiedError):
        return f"the Ray node running it died ({_said(exc)})"
    if isinstance(exc, ray.exceptions.RuntimeEnvSetupError):
        return f"Ray could not set up its runtime_env ({_said(exc)})"
    if isinstance(exc, ray.exceptions.RayTaskError):
        return f"its Ray task failed on the node ({_said(exc.cause or exc)})"
    return f"Ray: {_said(exc)}"


def _cancel(ref: ray.ObjectRef, force: bool) -> None:
    try:
        ray.cancel(ref, force=force)
    except Exception:  # noqa: BLE001  (ended meanwhile, or its node is gone: its callback says how)
        pass


def _said(exc: BaseException) -> str:
    """``Type: first line`` of what Ray said."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


EXECUTOR = RayExecutor
