"""Compute targets with the Azure ML SDK's signatures (issue 14, item 2): ``ComputeTarget(workspace,
name)`` gets an existing one, ``ComputeTarget.create`` makes one, and the members the samples use
(``list``, ``delete()``, ``refresh_state``, ``serialize``/``deserialize``, ``AmlCompute.get`` and
``update``) work on the workspace's history.db."""

from __future__ import annotations

import inspect

import pytest

from localpipe import Pipeline, PythonScriptStep
from localpipe.errors import ComputeTargetException, UserErrorException
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
