"""Compute targets: named pools of this machine's resources that steps run on.

``local`` is the whole machine, one CPU slot a step. Others are created with
``ComputeTarget.create(ws, name, LocalCompute.provisioning_configuration(...))`` or, as in the
seed, ``AmlCompute.provisioning_configuration(vm_size=..., max_nodes=...)``: the VM size gives
the CPUs, GPUs and memory each step claims, ``max_nodes`` how many steps run at once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from localpipe.errors import ComputeTargetException, UsageError

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
    ``name`` of ``ws``, and ``AmlCompute(ws, name)`` one of that kind; ComputeTargetException when
    there is none. ``ComputeTarget(name, config)`` declares one without looking anything up.
    """

    def __new__(cls, *args, **kwargs):
        workspace, name = _lookup_arguments(args, kwargs)
        if workspace is None:
            return super().__new__(cls)
        found = compute_targets(workspace).get(name)
        if found is None:
            raise ComputeTargetException(
                f'compute target "{name}" does not exist in workspace {workspace.root}: create it with '
                f'ComputeTarget.create(ws, "{name}", ...) or use "local"'
            )
        if not isinstance(found, cls):
            raise ComputeTargetException(
                f'compute target "{name}" is a {type(found).__name__}, not {cls.__name__}: '
                f"get it with {type(found).__name__}(ws, {name!r})"
            )
        return found

    def __init__(self, *args, **kwargs):
        if _lookup_arguments(args, kwargs)[0] is None:  # else __new__ returned a target already made
            self._declare(*args, **kwargs)

    def _declare(self, name: str, config: ProvisioningConfiguration | None = None) -> None:
        self.name = name
        self.config = config or ProvisioningConfiguration(kind="local")

    @staticmethod
    def create(workspace, name: str, provisioning_configuration: ProvisioningConfiguration) -> ComputeTarget:
        """Create (or replace) the target ``name``; returns it as LocalCompute or AmlCompute.

        A target may ask for more than this machine has (an Azure size, say): a pipeline using it
        then fails validation, naming what is missing.
        """
        if name == "local":
            raise UsageError('compute target "local" is built in: choose another name')
        config = provisioning_configuration
        workspace.service.save_compute_target(name, config.kind, asdict(config))
        return target_from(name, config)

    @property
    def cpus_per_step(self) -> int:
        return self.config.cpus_per_step

    @property
    def gpus_per_step(self) -> int:
        return self.config.gpus_per_step

    @property
    def memory_per_step(self) -> int | None:
        return self.config.memory_per_step

    @property
    def max_concurrent_steps(self) -> int | None:
        return self.config.max_concurrent_steps

    @property
    def status(self) -> ComputeTargetStatus:
        return ComputeTargetStatus(self)

    def get_status(self) -> ComputeTargetStatus:
        return self.status

    @property
    def type(self) -> str:
        """Azure's compute type name: ``AmlCompute``, or ``LocalCompute`` for a local pool."""
        return "AmlCompute" if self.config.kind == "aml" else "LocalCompute"

    @property
    def provisioning_state(self) -> str:
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
            print(f"{self.name}: Succeeded (local pool: {self.cpus_per_step} CPU, {self.gpus_per_step} GPU per step)")

    def delete(self, workspace) -> None:
        workspace.service.delete_compute_target(self.name)

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
        if cpus_per_step < 1 or gpus_per_step < 0:
            raise UsageError("LocalCompute: cpus_per_step must be at least 1 and gpus_per_step at least 0")
        return ProvisioningConfiguration("local", cpus_per_step, gpus_per_step, memory_per_step, max_concurrent_steps)


class AmlCompute(ComputeTarget):
    """The seed's cluster, mapped onto this machine: one step claims one VM's worth of resources."""

    @staticmethod
    def provisioning_configuration(
        vm_size: str = "",
        vm_priority: str = "dedicated",
        min_nodes: int = 0,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
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
        nodes = 4 if max_nodes is None else max_nodes
        return ProvisioningConfiguration("aml", size.cpus, size.gpus, size.memory_bytes, nodes, size.name)

    @staticmethod
    def supported_vmsizes(workspace, location: str | None = None) -> list[dict]:
        """The VM sizes this machine knows, as Azure lists them (name, vCPUs, gpus, memoryGB)."""
        from localpipe.hw.azure_sizes import VM_SIZES

        return [
            {"name": s.spelled, "vCPUs": s.cpus, "gpus": s.gpus, "memoryGB": s.memory_bytes / 2**30}
            for s in VM_SIZES.values()
        ]


def _lookup_arguments(args: tuple, kwargs: dict) -> tuple:
    """(workspace, name) when ComputeTarget is called as Azure's ``ComputeTarget(workspace, name)``;
    (None, None) for a declaration, ``ComputeTarget(name, config)``, whose first argument is text."""
    first = kwargs["workspace"] if "workspace" in kwargs else args[0] if args else None
    if first is None or isinstance(first, str):
        return None, None
    return first, kwargs["name"] if "name" in kwargs else args[1] if len(args) > 1 else None


LOCAL = ComputeTarget("local")


def target_from(name: str, config: ProvisioningConfiguration) -> ComputeTarget:
    return (AmlCompute if config.kind == "aml" else LocalCompute)(name, config)


def compute_targets(ws) -> dict[str, ComputeTarget]:
    """Every compute target of ``ws`` by name: ``local`` and those created in it."""
    return targets_from_configs(ws.service.compute_targets())


def targets_from_configs(configs: dict[str, dict]) -> dict[str, ComputeTarget]:
    """``local`` and the targets of ``configs`` (name -> provisioning configuration as a dict)."""
    return {
        "local": LOCAL,
        **{name: target_from(name, ProvisioningConfiguration(**config)) for name, config in configs.items()},
    }
