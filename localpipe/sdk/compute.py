"""Compute targets: named pools of this machine's resources that steps run on.

``local`` is the whole machine, one CPU slot a step. Others are created with
``ComputeTarget.create(ws, name, LocalCompute.provisioning_configuration(...))`` or, as in the
seed, ``AmlCompute.provisioning_configuration(vm_size=..., max_nodes=...)``: the VM size gives
the CPUs, GPUs and memory each step claims, ``max_nodes`` how many steps run at once.
``RayCompute.provisioning_configuration(address=...)`` is not a pool of this machine: its steps
run as Ray tasks on a Ray cluster, which reserves what they ask for (docs/scale-out.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from localpipe.errors import ComputeTargetException, UsageError, UserErrorException

DEFAULT_VM_SIZE = "STANDARD_D2_V2"


@dataclass(frozen=True)
class ProvisioningConfiguration:
    """What each step of a target claims, and how many of its steps may run at once."""

    kind: str
    cpus_per_step: int = 1
    gpus_per_step: int = 0
    memory_per_step: int | None = None
    max_concurrent_steps: int | None = None
    vm_size: str | None = None
    min_nodes: int = 0  # AmlCompute's scale settings, kept to be shown as Azure shows them
    idle_seconds_before_scaledown: int | None = None
    # RayCompute's: the cluster (None: a local Ray started for the run), custom resources per step, runtime_env.
    address: str | None = None
    resources: dict | None = None
    runtime_env: dict | None = None


class ComputeTargetStatus:
    """``compute_target.status``: a local pool is always provisioned."""

    def __init__(self, target: ComputeTarget):
        self._target = target

    def serialize(self) -> dict:
        config = self._target.config
        return {
            "provisioningState": "Succeeded",
            "vmSize": config.vm_size,
            "cpusPerStep": config.cpus_per_step,
            "gpusPerStep": config.gpus_per_step,
            "memoryPerStep": config.memory_per_step,
            "maxConcurrentSteps": config.max_concurrent_steps,
            "scaleSettings": {"minNodeCount": 0, "maxNodeCount": config.max_concurrent_steps},
        }

    def __str__(self) -> str:
        return json.dumps(self.serialize())


class ComputeTarget:
    """A named local resource pool kept in history.db.

    ``ComputeTarget(ws, name)`` (``workspace=``, ``name=``), as in Azure ML, is the existing target
    ``name`` of ``ws``, as a LocalCompute, AmlCompute or RayCompute, and ``AmlCompute(ws, name)`` one of that
    kind; ComputeTargetException when there is none. Targets are made with
    ``ComputeTarget.create(ws, name, provisioning_configuration)``. As in the SDK,
    ``ComputeTarget(None, None)`` is an empty object that ``deserialize`` fills in.
    """

    def __new__(cls, workspace, name):
        if not workspace or not name:
            return super().__new__(cls)
        if isinstance(workspace, str):
            raise UserErrorException(
                f"ComputeTarget(workspace, name) takes a Workspace first, not the text {workspace!r}: "
                f"make a target with ComputeTarget.create(ws, {workspace!r}, provisioning_configuration)"
            )
        found = _find(workspace, name)
        if not isinstance(found, cls):
            raise ComputeTargetException(
                f'compute target "{name}" is a {type(found).__name__}, not {cls.__name__}: '
                f"get it with {type(found).__name__}(ws, {name!r})"
            )
        return found

    def __init__(self, workspace, name):
        """Nothing to do: ``__new__`` returned the target as the workspace has it."""

    def _initialize(self, name: str, config: ProvisioningConfiguration, workspace=None) -> None:
        self.name = name
        self.config = config
        self.workspace = workspace

    @staticmethod
    def create(workspace, name: str, provisioning_configuration: ProvisioningConfiguration) -> ComputeTarget:
        """Create (or replace) the target ``name``; returns it as LocalCompute, AmlCompute or RayCompute.

        A target may ask for more than this machine has (an Azure size, say): a pipeline using it
        then fails validation, naming what is missing.
        """
        if name in RESERVED_NAMES:
            raise UserErrorException(f"Please specify a different target name. {name} is a reserved name.")
        config = provisioning_configuration
        workspace.service.save_compute_target(name, config.kind, asdict(config))
        return target_from(name, config, workspace)

    @staticmethod
    def list(workspace) -> list[ComputeTarget]:
        """Every compute target of ``workspace``, ``local`` first, as ``ws.compute_targets`` has them."""
        return list(compute_targets(workspace).values())

    @staticmethod
    def deserialize(workspace, object_dict: dict) -> ComputeTarget:
        """The target that ``serialize()`` described, bound to ``workspace`` (not created in it:
        ``ComputeTarget.create`` does that)."""
        try:
            properties = object_dict["properties"]
            config = ProvisioningConfiguration(**properties["properties"]["localpipe"])
            name = object_dict["name"]
        except (KeyError, TypeError) as exc:
            raise ComputeTargetException(
                f"Invalid compute target payload (no {exc}): pass what ComputeTarget.serialize() returned"
            ) from None
        return target_from(name, config, workspace)

    def serialize(self) -> dict:
        """Azure's JSON form of the target, with localpipe's provisioning configuration under
        ``properties.properties.localpipe``."""
        config = self.config
        return {
            "id": self.name,
            "name": self.name,
            "location": "local",
            "tags": None,
            "identity": None,
            "properties": {
                "description": None,
                "resourceId": None,
                "computeType": self.type,
                "computeLocation": "local",
                "provisioningState": self.provisioning_state,
                "provisioningErrors": None,
                "properties": {
                    "vmSize": config.vm_size,
                    "vmPriority": "dedicated",
                    "scaleSettings": _scale_settings(config),
                    "localpipe": asdict(config),
                },
                "status": self.status.serialize(),
            },
        }

    def refresh_state(self) -> None:
        """Read the target again from its workspace (another process may have changed it)."""
        self.config = _find(self._workspace("refresh_state"), self.name).config

    @property
    def cpus_per_step(self) -> int:
        """localpipe's: the CPU slots each step of this target claims (an AmlCompute's: its VM size's vCPUs)."""
        return self.config.cpus_per_step

    @property
    def gpus_per_step(self) -> int:
        """localpipe's: the whole GPUs each step of this target claims (an AmlCompute's: its VM size's)."""
        return self.config.gpus_per_step

    @property
    def memory_per_step(self) -> int | None:
        """localpipe's: the bytes of memory each step claims and may write to (``RLIMIT_DATA``: what it
        allocates, not the files it memory-maps); None: no limit."""
        return self.config.memory_per_step

    @property
    def max_concurrent_steps(self) -> int | None:
        """localpipe's: how many of this target's steps run at once (an AmlCompute's ``max_nodes``); None: no cap."""
        return self.config.max_concurrent_steps

    @property
    def status(self) -> ComputeTargetStatus:
        """The target's status: always provisioned (``Succeeded``); ``serialize()`` gives what it claims per step."""
        return ComputeTargetStatus(self)

    def get_status(self) -> ComputeTargetStatus:
        """The same as ``status``."""
        return self.status

    @property
    def type(self) -> str:
        """Azure's compute type name: ``AmlCompute``, or localpipe's ``LocalCompute`` (a local pool)
        or ``RayCompute`` (a Ray cluster)."""
        return _CLASSES.get(self.config.kind, LocalCompute).__name__

    @property
    def provisioning_state(self) -> str:
        """Always ``"Succeeded"``: a local pool has nothing to provision."""
        return "Succeeded"

    def wait_for_completion(
        self,
        show_output: bool = False,
        min_node_count=None,
        timeout_in_minutes: float = 25,
        is_delete_operation: bool = False,
    ) -> None:
        """Nothing to wait for locally; with ``show_output``, says so as the seed expects."""
        if show_output:
            where = "local pool" if self.config.kind != "ray" else f"Ray at {self.config.address or 'a local Ray'}"
            print(f"{self.name}: Succeeded ({where}: {self.cpus_per_step:g} CPU, {self.gpus_per_step:g} GPU per step)")

    def delete(self) -> None:
        """Remove the target from its workspace; steps that name it then fail validation."""
        if self.name == "local":
            raise ComputeTargetException('compute target "local" is built in and cannot be deleted')
        self._workspace("delete").service.delete_compute_target(self.name)

    def _workspace(self, method: str):
        if self.workspace is None:
            raise ComputeTargetException(
                f'compute target "{self.name}" belongs to no workspace: call {method}() on '
                f"ComputeTarget(ws, {self.name!r}) or on what ComputeTarget.create returned"
            )
        return self.workspace

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.config})"


class LocalCompute(ComputeTarget):
    """A pool declared by what each step claims."""

    @staticmethod
    def provisioning_configuration(
        cpus_per_step: int = 1,
        gpus_per_step: int = 0,
        memory_per_step: int | None = None,
        max_concurrent_steps: int | None = None,
    ) -> ProvisioningConfiguration:
        """localpipe's own configuration (Azure has no LocalCompute): what each step of the target claims
        (CPU slots, whole GPUs, bytes of memory) and how many of its steps run at once."""
        problems: list[str] = []
        cpus = _whole(problems, "cpus_per_step", cpus_per_step, 1)
        gpus = _whole(problems, "gpus_per_step", gpus_per_step, 0)
        memory = None
        if memory_per_step is not None:
            if not _number(memory_per_step) or memory_per_step < 1:
                problems.append(
                    f"memory_per_step must be a number of bytes of at least 1, or None, not {memory_per_step!r}"
                )
            else:
                memory = int(memory_per_step)
        cap = _whole(problems, "max_concurrent_steps", max_concurrent_steps, 1, may_be_none=True)
        if problems:
            raise UsageError("LocalCompute: " + "; ".join(problems))
        return ProvisioningConfiguration("local", cpus, gpus, memory, cap)


class AmlCompute(ComputeTarget):
    """The seed's cluster, mapped onto this machine: one step claims one VM's worth of resources."""

    @staticmethod
    def provisioning_configuration(
        vm_size: str = "",
        vm_priority: str = "dedicated",
        min_nodes: int = 0,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int = 1800,
        admin_username: str | None = None,
        admin_user_password: str | None = None,
        admin_user_ssh_key: str | None = None,
        vnet_resourcegroup_name: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
        tags: dict | None = None,
        description: str | None = None,
        remote_login_port_public_access: str = "NotSpecified",
        identity_type: str | None = None,
        identity_id: list | None = None,
        location: str | None = None,
        enable_node_public_ip: bool = True,
    ) -> ProvisioningConfiguration:
        """Azure's parameters; what sizes a step here is ``vm_size`` (each step claims one VM's
        CPUs, GPUs and memory; "" is STANDARD_D2_V2 here, where Azure would pick a GPU size) and
        ``max_nodes`` (how many steps at once; None is 4). The network, identity, scaling and
        login parameters have no meaning on one machine and are accepted as they are."""
        from localpipe.hw.azure_sizes import lookup_vm_size

        size = lookup_vm_size(vm_size or DEFAULT_VM_SIZE)
        nodes, least = _node_counts(4 if max_nodes is None else max_nodes, min_nodes)
        return ProvisioningConfiguration(
            "aml", size.cpus, size.gpus, size.memory_bytes, nodes, size.name, least, idle_seconds_before_scaledown
        )

    def get(self) -> dict | None:
        """The target as its workspace has it now, in Azure's JSON form; None when it was deleted."""
        found = compute_targets(self._workspace("get")).get(self.name)
        return found.serialize() if found is not None else None

    def update(
        self,
        min_nodes: int | None = None,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
    ) -> None:
        """Change the scale settings: ``max_nodes`` is how many of the target's steps run at once."""
        if min_nodes is None and max_nodes is None and idle_seconds_before_scaledown is None:
            return
        self.refresh_state()
        config = self.config
        max_nodes, min_nodes = _node_counts(
            config.max_concurrent_steps if max_nodes is None else max_nodes,
            config.min_nodes if min_nodes is None else min_nodes,
        )
        changes = {
            "min_nodes": min_nodes,
            "max_concurrent_steps": max_nodes,
            "idle_seconds_before_scaledown": idle_seconds_before_scaledown,
        }
        self.config = replace(self.config, **{key: value for key, value in changes.items() if value is not None})
        self.workspace.service.save_compute_target(self.name, self.config.kind, asdict(self.config))

    def get_active_runs(self, type=None, tags=None, properties=None, status=None):
        """A generator of the workspace's active runs (Queued, Running, ...) with a step on this
        target, newest first, that match every filter given (as ``Run.list``); the run handles,
        where the SDK gives its run records."""
        runs = self._workspace("get_active_runs").service.active_runs(self.name)
        yield from (r for r in runs if _run_matches(r, type, tags, properties, status))

    def list_nodes(self) -> list[dict]:
        """The nodes in use now, as Azure lists a cluster's: one per step of this target holding its
        claim (a step here claims one VM's worth), ``nodeState`` ``running``, ``runId`` the run it
        belongs to, on this machine's address; ``[]`` while none runs, as an idle Azure cluster
        scaled to ``min_nodes=0`` lists none."""
        held = self._workspace("list_nodes").service.held_claims(self.name)
        return [
            {
                "nodeId": f"{self.name}-{claim['id']}",
                "port": None,
                "privateIpAddress": "127.0.0.1",
                "publicIpAddress": None,
                "nodeState": "running",
                "runId": str(claim["run_id"]),
            }
            for claim in held
        ]

    @staticmethod
    def supported_vmsizes(workspace, location: str | None = None) -> list[dict]:
        """The VM sizes this machine knows, as Azure lists them (name, vCPUs, gpus, memoryGB)."""
        from localpipe.hw.azure_sizes import VM_SIZES

        return [
            {"name": s.spelled, "vCPUs": s.cpus, "gpus": s.gpus, "memoryGB": s.memory_bytes / 2**30}
            for s in VM_SIZES.values()
        ]


class RayCompute(ComputeTarget):
    """localpipe's own target (Azure has none like it): each step runs as one Ray task on a Ray
    cluster, with the CPUs, GPUs and custom resources it asks for reserved by Ray, not by this
    machine's pool; the scheduler, history.db and the workspace stay on the submitting machine,
    and every node must see the workspace at the same path (docs/scale-out.md)."""

    @staticmethod
    def provisioning_configuration(
        address: str | None = None,
        cpus_per_step: float = 1,
        gpus_per_step: float = 0,
        resources: dict | None = None,
        runtime_env: dict | None = None,
    ) -> ProvisioningConfiguration:
        """``address``: ``"auto"`` (the cluster ``ray start`` runs on this machine), ``"HOST:PORT"``
        or ``"ray://HOST:10001"``; None starts a local Ray for each run (it takes seconds to start).
        What each step's Ray task asks for: ``cpus_per_step`` and ``gpus_per_step`` (fractions
        allowed, as Ray allows them), ``resources`` (custom resources by name, as
        ``@ray.remote(resources=...)``) and ``runtime_env`` (its ``env_vars`` only: a step's
        packages come from its environment). Needs Ray: ``pip install 'localpipe[ray]'``."""
        problems = []
        if address is not None and (not isinstance(address, str) or not address.strip()):
            problems.append(f'address must be "auto", "HOST:PORT", "ray://HOST:10001" or None, not {address!r}')
        if not _number(cpus_per_step) or cpus_per_step <= 0:
            problems.append(f"cpus_per_step must be a number above 0, not {cpus_per_step!r}")
        if not _number(gpus_per_step) or gpus_per_step < 0:
            problems.append(f"gpus_per_step must be a number of at least 0, not {gpus_per_step!r}")
        if resources is not None and not (
            isinstance(resources, dict)
            and all(isinstance(k, str) and k and _number(v) and v > 0 for k, v in resources.items())
        ):
            problems.append(f"resources must map resource names to amounts above 0, not {resources!r}")
        elif resources and {"CPU", "GPU"} & set(resources):  # Ray refuses them there, when the task is submitted
            problems.append("resources may not name CPU or GPU: ask for them with cpus_per_step and gpus_per_step")
        if runtime_env is not None and not (isinstance(runtime_env, dict) and set(runtime_env) <= {"env_vars"}):
            problems.append(
                f"runtime_env may only hold env_vars (a step's packages come from its Environment), not {runtime_env!r}"
            )
        elif runtime_env and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in (runtime_env.get("env_vars") or {}).items()
        ):
            problems.append("runtime_env's env_vars must map names to text values")
        if problems:
            raise UsageError("RayCompute: " + "; ".join(problems))
        return ProvisioningConfiguration(
            "ray", cpus_per_step, gpus_per_step, address=address, resources=dict(resources or {}) or None,
            runtime_env=runtime_env or None,
        )  # fmt: skip


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(problems: list[str], name: str, value, least: int, may_be_none: bool = False) -> int | None:
    """``value`` as an int when it is a whole number of at least ``least`` (``2.0`` is 2); else a
    problem naming it is added. A fraction of a CPU slot or of a GPU cannot be claimed here, nor
    can a node count below 1 be met (a run would wait for ever)."""
    if value is None and may_be_none:
        return None
    if _number(value) and value == int(value) and value >= least:
        return int(value)
    problems.append(
        f"{name} must be a whole number of at least {least}{', or None' if may_be_none else ''}, not {value!r}"
    )
    return None


def _node_counts(max_nodes, min_nodes) -> tuple[int | None, int | None]:
    """AmlCompute's ``max_nodes`` (how many steps at once here; None: no cap, as an older
    localpipe's target may have) and ``min_nodes``, checked as Azure checks them."""
    problems: list[str] = []
    most = _whole(problems, "max_nodes", max_nodes, 1, may_be_none=True)
    least = _whole(problems, "min_nodes", min_nodes, 0, may_be_none=True)
    if not problems and most is not None and least is not None and least > most:
        problems.append(f"min_nodes {least} is more than max_nodes {most}: lower min_nodes or raise max_nodes")
    if problems:
        raise UsageError("AmlCompute: " + "; ".join(problems))
    return most, least


RESERVED_NAMES = ("amlcompute", "local", "containerinstance")  # Azure's reserved target names


def _find(workspace, name: str) -> ComputeTarget:
    found = compute_targets(workspace).get(name)
    if found is None:
        raise ComputeTargetException(
            f'compute target "{name}" does not exist in workspace {workspace.root}: create it with '
            f'ComputeTarget.create(ws, "{name}", ...) or use "local"'
        )
    return found


def _scale_settings(config: ProvisioningConfiguration) -> dict:
    idle = config.idle_seconds_before_scaledown
    return {
        "minNodeCount": config.min_nodes,
        "maxNodeCount": config.max_concurrent_steps,
        "nodeIdleTimeBeforeScaleDown": f"PT{idle}S" if idle is not None else None,
    }


def target_from(name: str, config: ProvisioningConfiguration, workspace=None) -> ComputeTarget:
    """The target ``name`` with ``config``, of the class its kind names, bound to ``workspace``."""
    target = object.__new__(_CLASSES.get(config.kind, LocalCompute))
    target._initialize(name, config, workspace)
    return target


LOCAL_CONFIG = ProvisioningConfiguration(kind="local")
_CLASSES = {"aml": AmlCompute, "local": LocalCompute, "ray": RayCompute}


def _run_matches(run, type, tags, properties, status) -> bool:
    def has(values: dict, wanted) -> bool:
        if wanted is None:
            return True
        if isinstance(wanted, str):
            return wanted in values
        return all(k in values and values[k] == v for k, v in dict(wanted).items())

    return (
        (type is None or run.type == type)
        and (status is None or run.get_status() == status)
        and has(run.get_tags(), tags)
        and has(run.get_properties(), properties)
    )


def compute_targets(ws) -> dict[str, ComputeTarget]:
    """Every compute target of ``ws`` by name: ``local`` and those created in it."""
    return targets_from_configs(ws.service.compute_targets(), ws)


def targets_from_configs(configs: dict[str, dict], workspace=None) -> dict[str, ComputeTarget]:
    """``local`` and the targets of ``configs`` (name -> provisioning configuration as a dict)."""
    local = object.__new__(ComputeTarget)
    local._initialize("local", LOCAL_CONFIG, workspace)
    return {
        "local": local,
        **{name: target_from(name, ProvisioningConfiguration(**config), workspace) for name, config in configs.items()},
    }
