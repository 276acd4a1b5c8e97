"""Compute targets with the Azure ML SDK's signatures (issue 14, item 2): ``ComputeTarget(workspace,
name)`` gets an existing one, ``ComputeTarget.create`` makes one, and the members the samples use
(``list``, ``delete()``, ``refresh_state``, ``serialize``/``deserialize``, ``AmlCompute.get`` and
``update``) work on the workspace's history.db."""

from __future__ import annotations

import inspect
import json

import pytest

from localpipe import Pipeline, PythonScriptStep
from localpipe.errors import ComputeTargetException, UsageError, UserErrorException
from localpipe.sdk.compute import AmlCompute, ComputeTarget, LocalCompute


def get_or_create(ws, name: str) -> ComputeTarget:
    """The samples' idiom (how-to-use-azureml/machine-learning-pipelines, 50 files), as written."""
    try:
        cpu_cluster = ComputeTarget(workspace=ws, name=name)
        print("Found existing cluster, use it.")
    except ComputeTargetException:
        compute_config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4)
        cpu_cluster = ComputeTarget.create(ws, name, compute_config)
    cpu_cluster.wait_for_completion(show_output=True)
    return cpu_cluster


def test_the_constructors_take_the_sdks_parameters_and_nothing_else(ws):
    for cls in (ComputeTarget, AmlCompute):
        assert list(inspect.signature(cls).parameters) == ["workspace", "name"]
    with pytest.raises(TypeError):
        ComputeTarget(ws, name="x", nmae="y")  # a misspelled keyword is refused, as in the SDK
    with pytest.raises(UserErrorException, match=r"takes a Workspace first, not the text 'big': make a target with"):
        ComputeTarget("big", LocalCompute.provisioning_configuration())
    empty = AmlCompute(None, None)  # the SDK's empty object, which deserialize fills in
    assert type(empty) is AmlCompute


def test_get_or_create_then_list_refresh_update_and_delete(ws, capsys):
    created = get_or_create(ws, "cpu-cluster")
    again = get_or_create(ws, "cpu-cluster")
    assert "Found existing cluster, use it." in capsys.readouterr().out
    assert type(again) is AmlCompute and again.config == created.config
    assert [(t.name, t.type) for t in ComputeTarget.list(ws)] == [
        ("local", "LocalCompute"),
        ("cpu-cluster", "AmlCompute"),
    ]
    assert [t.name for t in AmlCompute.list(ws)] == ["local", "cpu-cluster"]

    again.update(max_nodes=1, idle_seconds_before_scaledown=120)  # max_nodes: steps at once here
    assert ComputeTarget(ws, "cpu-cluster").max_concurrent_steps == 1
    assert created.max_concurrent_steps == 4  # a handle made before keeps what it read...
    created.refresh_state()
    assert created.max_concurrent_steps == 1  # ...until refresh_state
    assert created.get()["properties"]["properties"]["scaleSettings"] == {
        "minNodeCount": 0,
        "maxNodeCount": 1,
        "nodeIdleTimeBeforeScaleDown": "PT120S",
    }

    created.delete()
    assert created.get() is None
    with pytest.raises(ComputeTargetException, match='"cpu-cluster" does not exist'):
        ComputeTarget(ws, "cpu-cluster")
    with pytest.raises(ComputeTargetException, match='"cpu-cluster" does not exist'):
        created.refresh_state()
    with pytest.raises(ComputeTargetException, match='"local" is built in'):
        ComputeTarget(ws, "local").delete()


def test_a_deleted_target_fails_validation_of_the_steps_that_name_it(ws, project):
    project("src/s.py", "print(1)\n")
    target = get_or_create(ws, "gpu-cluster")
    pipeline = Pipeline(
        ws, [PythonScriptStep("s.py", name="s", source_directory=ws.root / "src", compute_target=target)]
    )
    assert pipeline.validate() == []
    target.delete()
    assert pipeline.validate() == [
        'step "s": compute target "gpu-cluster" does not exist: create it with ComputeTarget.create(...) or use "local"'
    ]


def test_serialize_is_azures_json_form_and_deserialize_reads_it_back(ws):
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6", min_nodes=0, max_nodes=2)
    assert config.idle_seconds_before_scaledown == 1800  # the SDK's default
    target = ComputeTarget.create(ws, "gpu", config)
    data = target.serialize()
    assert data["name"] == "gpu" and data["properties"]["computeType"] == "AmlCompute"
    assert data["properties"]["provisioningState"] == "Succeeded"
    assert data["properties"]["properties"]["vmSize"] == "STANDARD_NC6"
    assert data["properties"]["properties"]["scaleSettings"]["nodeIdleTimeBeforeScaleDown"] == "PT1800S"
    back = AmlCompute.deserialize(ws, data)
    assert type(back) is AmlCompute and back.config == target.config and back.workspace is ws
    local = ComputeTarget.create(ws, "cpu", LocalCompute.provisioning_configuration(cpus_per_step=2))
    assert type(ComputeTarget.deserialize(ws, local.serialize())) is LocalCompute
    with pytest.raises(ComputeTargetException, match="Invalid compute target payload"):
        ComputeTarget.deserialize(ws, {"name": "x"})


def test_reserved_names_are_refused_as_in_the_sdk(ws):
    for name in ("local", "amlcompute", "containerinstance"):
        with pytest.raises(UserErrorException, match=f"{name} is a reserved name"):
            ComputeTarget.create(ws, name, LocalCompute.provisioning_configuration())


SEED_TARGET = """
from localpipe import Pipeline, PythonScriptStep, Workspace
from localpipe.sdk.compute import AmlCompute, ComputeTarget

ws = Workspace.from_config()
compute_name = "aml-compute"
vm_size = "{vm_size}"
if compute_name in ws.compute_targets:
    compute_target = ws.compute_targets[compute_name]
    if compute_target and type(compute_target) is AmlCompute:
        print("Found compute target: " + compute_name)
else:
    print("Creating a new compute target...")
    provisioning_config = AmlCompute.provisioning_configuration(vm_size=vm_size, min_nodes=0, max_nodes=4)
    compute_target = ComputeTarget.create(ws, compute_name, provisioning_config)
    compute_target.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=20)
step = PythonScriptStep("s.py", name="s", source_directory="src", compute_target=compute_target)
pipeline = Pipeline(ws, [step])
"""


def test_a_refused_submission_keeps_no_compute_target_its_code_created(ws, localpipe, project):
    """Issue 17, item 5: the seed page's idiom with a GPU size on a machine without one is refused,
    and the target it created is not kept, so the fixed size is the one the next submit creates."""
    project("src/s.py", "print('ran')\n")
    pipeline = project("pipeline.py", SEED_TARGET.format(vm_size="STANDARD_NC6"))
    env = {"LOCALPIPE_FAKE_GPUS": "none"}

    refused = localpipe("submit", pipeline, env=env)

    assert refused.returncode == 2, refused.stderr
    assert "GPU" in refused.stderr
    assert refused.stderr.rstrip().endswith(
        'compute target "aml-compute" was not kept (this refused submission created it): '
        "fix the pipeline and run it again to create it anew"
    ), refused.stderr
    assert "aml-compute" not in localpipe("compute", check=True).stdout
    assert localpipe("runs", check=True).stdout.count("\n") <= 1  # no run either

    project("pipeline.py", SEED_TARGET.format(vm_size="STANDARD_D2_V2"))
    submitted = localpipe("submit", pipeline, env=env)
    assert submitted.returncode == 0, submitted.stderr
    assert "Creating a new compute target..." in submitted.stdout
    listed = json.loads(localpipe("compute", "--json", check=True).stdout)
    assert [(t["name"], t["vm_size"]) for t in listed] == [("local", None), ("aml-compute", "STANDARD_D2_V2")]


def test_a_refused_submission_puts_back_a_target_its_code_changed(ws, localpipe, project):
    ComputeTarget.create(ws, "big", LocalCompute.provisioning_configuration(cpus_per_step=1))
    project("src/s.py", "print('ran')\n")
    pipeline = project(
        "pipeline.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace
        from localpipe.sdk.compute import ComputeTarget, LocalCompute

        ws = Workspace.from_config()
        big = ComputeTarget.create(ws, "big", LocalCompute.provisioning_configuration(cpus_per_step=4096))
        pipeline = Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory="src", compute_target=big)])
        """,
    )

    refused = localpipe("submit", pipeline)

    assert refused.returncode == 2
    assert refused.stderr.rstrip().endswith(
        'compute target "big" is back as it was: this refused submission\'s change to it was not kept'
    ), refused.stderr
    assert ComputeTarget(ws, "big").cpus_per_step == 1


def test_compute_lists_what_each_target_gives_a_step_and_deletes_one_no_run_uses(ws, localpipe, project):
    ComputeTarget.create(ws, "gpu", AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6", max_nodes=2))
    ComputeTarget.create(ws, "busy", LocalCompute.provisioning_configuration(cpus_per_step=1))
    listed = localpipe("compute", check=True).stdout.splitlines()
    assert listed[0].split() == [
        "name",
        "kind",
        "cpus",
        "gpus",
        "memory",
        "at",
        "once",
        "vm",
        "size",
        "scale",
        "settings",
    ]
    assert listed[1].split() == ["local", "LocalCompute", "1", "0", "-", "-", "-", "-"]
    assert listed[2].split() == [
        "gpu",
        "AmlCompute",
        "6",
        "1",
        "56.0",
        "GiB",
        "2",
        "STANDARD_NC6",
        "min",
        "0,",
        "idle",
        "1800s",
    ]
    gpu = json.loads(localpipe("compute", "--json", check=True).stdout)[1]
    assert gpu == {
        "name": "gpu",
        "kind": "AmlCompute",
        "cpus_per_step": 6,
        "gpus_per_step": 1,
        "memory_per_step": 56 * 2**30,
        "max_concurrent_steps": 2,
        "vm_size": "STANDARD_NC6",
        "min_nodes": 0,
        "idle_seconds_before_scaledown": 1800,
    }

    unknown = localpipe("compute", "delete", "gpu-cluster")
    assert unknown.returncode == 2
    assert unknown.stderr == (
        f'error: compute target "gpu-cluster" does not exist in workspace {ws.root} '
        "(its targets: local, gpu, busy): see `localpipe compute`\n"
    )
    assert (
        localpipe("compute", "delete", "local").stderr
        == 'error: compute target "local" is built in and cannot be deleted\n'
    )

    project("src/s.py", "import time\ntime.sleep(60)\n")
    pipeline = project(
        "pipeline.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace
        ws = Workspace.from_config()
        pipeline = Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory="src", compute_target="busy")])
        """,
    )
    run = localpipe("submit", "--detach", pipeline, check=True).stdout.strip()
    try:
        refused = localpipe("compute", "delete", "busy")
        assert refused.returncode == 2
        assert refused.stderr == (
            f'error: compute target "busy" is used by active run {run}: wait for it to end or cancel it '
            "(localpipe cancel RUN), then delete the target\n"
        )
    finally:
        localpipe("cancel", run, check=True)
    assert localpipe("compute", "delete", "gpu", check=True).stdout == 'deleted compute target "gpu"\n'
    assert [t.name for t in ComputeTarget.list(ws)] == ["local", "busy"]


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: LocalCompute.provisioning_configuration(gpus_per_step=0.5), "gpus_per_step must be"),
        (lambda: LocalCompute.provisioning_configuration(cpus_per_step=1.5), "cpus_per_step must be"),
        (lambda: LocalCompute.provisioning_configuration(cpus_per_step="2"), "cpus_per_step must be"),
        (lambda: LocalCompute.provisioning_configuration(memory_per_step=-5), "memory_per_step must be"),
        (lambda: LocalCompute.provisioning_configuration(memory_per_step="4G"), "memory_per_step must be"),
        (lambda: LocalCompute.provisioning_configuration(max_concurrent_steps=0), "max_concurrent_steps must be"),
        (lambda: LocalCompute.provisioning_configuration(max_concurrent_steps=-1), "max_concurrent_steps must be"),
        (lambda: AmlCompute.provisioning_configuration("STANDARD_D2_V2", max_nodes=-1), "max_nodes must be"),
        (lambda: AmlCompute.provisioning_configuration("STANDARD_D2_V2", max_nodes=0), "max_nodes must be"),
        (lambda: AmlCompute.provisioning_configuration("STANDARD_D2_V2", max_nodes="2"), "max_nodes must be"),
        (lambda: AmlCompute.provisioning_configuration("STANDARD_D2_V2", min_nodes=-1), "min_nodes must be"),
        (lambda: AmlCompute.provisioning_configuration("STANDARD_D2_V2", min_nodes=3, max_nodes=1), "min_nodes 3"),
    ],
)
def test_a_pool_target_with_a_value_that_cannot_work_is_refused_naming_it(make, named):
    """They were taken: max_nodes=-1 left the run Queued for ever, 0 meant no cap at all, a GPU or a
    node count given as 0.5 or "2" failed the scheduler with a TypeError once the run had started,
    and memory_per_step=-5 was a limit of nothing."""
    with pytest.raises(UsageError, match=r"^(LocalCompute|AmlCompute): ") as caught:
        make()
    assert named in str(caught.value)


def test_update_refuses_a_node_count_that_cannot_work_and_keeps_the_target(ws):
    target = ComputeTarget.create(ws, "cpu", AmlCompute.provisioning_configuration("STANDARD_D2_V2", max_nodes=2))
    with pytest.raises(
        UsageError, match="^AmlCompute: max_nodes must be a whole number of at least 1, or None, not -1"
    ):
        target.update(max_nodes=-1)
    assert ComputeTarget(ws, "cpu").max_concurrent_steps == 2 == target.max_concurrent_steps
    target.update(max_nodes=3.0)  # a whole number, as a float
    assert ComputeTarget(ws, "cpu").max_concurrent_steps == 3
    assert LocalCompute.provisioning_configuration(memory_per_step=4e9).memory_per_step == 4_000_000_000
