"""What a step on a Ray target (``RayCompute``) is checked for when planned: Ray is installed,
the cluster answers, one of its nodes has what the step asks for, every node sees the workspace
and has the steps' interpreters, and the step is one the Ray executor runs (docs/scale-out.md).

Pure: what the cluster has comes from ``capacity.ray_cluster(address, cache, pythons)``, which the engine
answers (``engine/submit.py``, asking ``engine/executors/ray.py``), once per address.
"""

from __future__ import annotations

LOCAL_RAY = "a local Ray (address=None: this machine's CPUs and GPUs, no custom resources)"


def ray_resources(config) -> dict:
    """What a step of a RayCompute target asks for, as ``StepSpec.resources``: nothing of this
    machine's pool (``"ray"`` says Ray reserves it)."""
    return {
        "cpus": config.cpus_per_step,
        "gpus": config.gpus_per_step,
        "memory": None,
        "max_concurrent": None,
        "ray": {"address": config.address, "resources": config.resources or {}, "runtime_env": config.runtime_env},
    }


def check_ray_steps(specs: list, capacity, found: list[str]) -> None:
    """Add to ``found`` every problem of the steps of ``specs`` that run on Ray targets."""
    on_ray = [spec for spec in specs if spec.resources.get("ray")]
    if not on_ray:
        return
    addresses = {spec.resources["ray"]["address"] for spec in on_ray}
    if len(addresses) > 1:
        named = ", ".join(sorted(_where(a) for a in addresses))
        found.append(
            f"steps run on Ray targets of different clusters ({named}): a run connects to one Ray cluster, "
            "so give them targets with the same address"
        )
        return
    for spec in on_ray:
        _unsupported(spec, found)
    if capacity is None:
        return
    address = addresses.pop()
    cluster = capacity.ray_cluster(
        address, any(s.environment.get("kind") == "venv" for s in on_ray), _interpreters(on_ray)
    )
    if cluster["problem"]:
        targets = ", ".join(sorted({f'"{s.compute_target}"' for s in on_ray}))
        found.append(f"steps on Ray target {targets} cannot run: {cluster['problem']}")
        return
    found.extend(cluster["unseen"])
    for spec in on_ray:
        _fits(spec, address, cluster["nodes"], found)


def _interpreters(on_ray) -> tuple[str, ...]:
    """The interpreters the Ray steps run on, which every node must have at the same path: a step's
    own (this process's, or the ``interpreter_path`` it names), or the base of the environment
    built for it (its virtual environment, in the machine's cache, links to that base)."""
    found = set()
    for spec in on_ray:
        environment = spec.environment
        found.add(environment["interpreter"] if environment.get("kind") == "python" else environment.get("base"))
    return tuple(sorted(path for path in found if path))


def _unsupported(spec, found: list[str]) -> None:
    label = f'step "{spec.name}"'
    target = f'Ray target "{spec.compute_target}"'
    if spec.environment.get("kind") == "docker":
        found.append(
            f"{label} runs in Docker and on {target}: the Ray executor does not start containers; "
            "run the step without Docker or on a local target"
        )
    if spec.kind == "parallel":
        found.append(
            f"{label} is a ParallelRunStep on {target}: its workers are placed on this machine only; "
            "use a local target (or one step per partition on Ray)"
        )


def _fits(spec, address: str | None, nodes: list[dict], found: list[str]) -> None:
    """One node must have all the step asks for at once: Ray places a task on a single node."""
    label = f'step "{spec.name}"'
    need = spec.resources
    asked = {"CPU": need["cpus"], "GPU": need["gpus"], **need["ray"]["resources"]}
    fix = f'lower it on compute target "{spec.compute_target}" or use another target'
    asked = {name: amount for name, amount in asked.items() if amount}
    short = False
    for name, amount in asked.items():
        most = max((node["resources"].get(name, 0) for node in nodes), default=0)
        if amount > most:
            short = True
            has = f"the most a node has is {most:g}" if most else "no node has any"
            found.append(
                f"{label} asks Ray for {_amount(name, amount)} per step, but in {_where(address)}, {has}: {fix}"
            )
    if not short and not any(all(node["resources"].get(n, 0) >= a for n, a in asked.items()) for node in nodes):
        each = [_amount(name, amount) for name, amount in asked.items()]
        found.append(
            f"{label} asks Ray for {', '.join(each[:-1])} and {each[-1]} per step, but in {_where(address)}, no node "
            f"has all of them (Ray runs a task on one node): {fix}"
        )


def _amount(name: str, amount: float) -> str:
    what = f"{name}{'' if amount == 1 else 's'}" if name in ("CPU", "GPU") else f'of resource "{name}"'
    return f"{amount:g} {what}"


def _where(address: str | None) -> str:
    return LOCAL_RAY if address is None else f"the Ray cluster at {address}"
