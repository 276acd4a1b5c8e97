"""Published pipelines and pipeline endpoints (issue 19, items 1 and 2): publishing freezes the
pipeline, its runs reuse steps as any run does, and bad submissions are one line with nothing recorded."""

from __future__ import annotations

import pytest

from localpipe import Experiment, Pipeline, PipelineParameter, PipelineRun, PythonScriptStep
from localpipe.client.publishing import PipelineEndpoint, PublishedPipeline
from localpipe.errors import NotFoundError, PipelineValidationError, UsageError, UserErrorException

SCRIPT = "import sys\nprint('{tag}', sys.argv[1:])\n"


def _pipeline(ws, project, tag="v1", name="train"):
    project("src/train.py", SCRIPT.format(tag=tag))
    n = PipelineParameter("n", default_value=3)
    return Pipeline(
        ws, [PythonScriptStep("train.py", name=name, source_directory=str(ws.root / "src"), arguments=["--n", n])]
    )


def _log(history, run) -> str:
    """What the run's one step printed (the run that computed it, for a reused step)."""
    step = history.runs.details(run.id)["steps"][0]
    source = step["reused_from_run"] if step["status"] == "Reused" else run.id
    return (history.layout.step_dir(source, step["name"]) / "stdout.log").read_text()


def _step_status(history, run) -> str:
    return history.runs.details(run.id)["steps"][0]["status"]


def test_a_published_pipeline_runs_the_code_it_was_published_with(ws, project, history):
    published = _pipeline(ws, project).publish("trainer", description="trains", version="1.0")
    assert (published.name, published.description, published.version, published.status) == (
        "trainer",
        "trains",
        "1.0",
        "Active",
    )
    assert published.total_run_steps == 1 and published.get_step_names() == ["train"]
    assert published.endpoint.startswith("http://127.0.0.1:") and published.endpoint.endswith(published.id)
    project("src/train.py", SCRIPT.format(tag="edited"))  # an edit after publishing changes nothing it runs
    (ws.root / "src" / "new.py").write_text("print('new file')\n")

    run = published.submit(ws, "published", pipeline_parameters={"n": 7})
    assert run.wait_for_completion(show_output=False) == "Completed"
    assert "v1 ['--n', '7']" in _log(history, run)
    assert run.get_properties()["azureml.pipelineid"] == published.id
    assert [r.id for r in PipelineRun.get_pipeline_runs(ws, published.id)] == [run.id]
    again = Experiment(ws, "published").submit(PublishedPipeline.get(ws, published.id))
    assert again.wait_for_completion(show_output=False) == "Completed"
    assert "v1 ['--n', '3']" in _log(history, again)


def test_a_published_pipelines_run_reuses_the_steps_of_an_ordinary_run(ws, project, history):
    pipeline = _pipeline(ws, project)
    first = Experiment(ws, "plain").submit(pipeline)
    assert first.wait_for_completion(show_output=False) == "Completed"
    run = pipeline.publish("trainer").submit(ws, "published")
    assert run.wait_for_completion(show_output=False) == "Completed"
    assert _step_status(history, run) == "Reused"
    edited = _pipeline(ws, project, tag="v2").publish("trainer", version="2")
    rerun = edited.submit(ws, "published")
    assert rerun.wait_for_completion(show_output=False) == "Completed"
    assert _step_status(history, rerun) == "Completed" and "v2" in _log(history, rerun)


def test_bad_submissions_are_one_line_and_record_nothing(ws, project, history):
    published = _pipeline(ws, project).publish("trainer")
    unknown = r'^parameter "epochs" is not a parameter of published pipeline "trainer" \(its parameters: n\)$'
    with pytest.raises(UserErrorException, match=unknown):
        published.submit(ws, "x", pipeline_parameters={"epochs": 2})
    with pytest.raises(PipelineValidationError, match='parameter "n"'):
        published.submit(ws, "x", pipeline_parameters={"n": "many"})
    published.disable()
    assert PublishedPipeline.get(ws, published.id).status == "Disabled"
    assert [p.id for p in PublishedPipeline.list(ws)] == []
    assert [p.id for p in PublishedPipeline.list(ws, active_only=False)] == [published.id]
    with pytest.raises(UserErrorException, match="is disabled: enable it"):
        Experiment(ws, "x").submit(published)
    with pytest.raises(NotFoundError, match='no published pipeline has id "nope"'):
        PublishedPipeline.get(ws, "nope")
    assert history.runs.list() == []
    published.enable()
    assert published.submit(ws, "x").wait_for_completion(show_output=False) == "Completed"


def test_an_invalid_pipeline_is_not_published(ws, project, history):
    project("src/train.py", "print(1)\n")
    bad = Pipeline(ws, [PythonScriptStep("missing.py", name="t", source_directory=str(ws.root / "src"))])
    with pytest.raises(PipelineValidationError, match="missing.py"):
        bad.publish("broken")
    with pytest.raises(UserErrorException, match="needs a name"):
        _pipeline(ws, project).publish()
    assert PublishedPipeline.list(ws, active_only=False) == []


def test_endpoint_versions_and_default(ws, project, history):
    first = _pipeline(ws, project).publish("trainer", version="1")
    endpoint = PipelineEndpoint.publish(ws, "training", "the training endpoint", first)
    assert (endpoint.name, endpoint.default_version, endpoint.status) == ("training", "0", "Active")
    second = _pipeline(ws, project, tag="v2").publish("trainer", version="2")
    endpoint.add(second)
    assert endpoint.default_version == "0"
    assert [(v.version, v.pipeline.id) for v in endpoint.list_versions()] == [("0", first.id), ("1", second.id)]
    assert [(v.version, v.pipeline_id) for v in endpoint.pipeline_version_list] == [("0", first.id), ("1", second.id)]
    run = endpoint.submit("via-endpoint")
    assert run.wait_for_completion(show_output=False) == "Completed" and "v1" in _log(history, run)
    endpoint.set_default_version("1")
    assert PipelineEndpoint.get(ws, name="training").get_pipeline().id == second.id
    run = Experiment(ws, "via-endpoint").submit(endpoint, tags={"endpoint_tag": "1"}, pipeline_parameters={"n": 1})
    assert run.wait_for_completion(show_output=False) == "Completed" and "v2 ['--n', '1']" in _log(history, run)
    assert run.get_tags()["endpoint_tag"] == "1"
    third = _pipeline(ws, project, tag="v3").publish("trainer", version="3")
    endpoint.add_default(third)
    assert (endpoint.default_version, endpoint.get_pipeline("0").id) == ("2", first.id)
    with pytest.raises(ValueError, match='has no version "7"'):
        endpoint.get_pipeline("7")
    with pytest.raises(ValueError, match='has no version "9"'):
        endpoint.set_default_version(9)
    with pytest.raises(UsageError, match='already named "training"'):
        PipelineEndpoint.publish(ws, "training", None, first)
    endpoint.disable()
    assert PipelineEndpoint.list(ws) == [] and len(PipelineEndpoint.list(ws, active_only=False)) == 1
    before = len(history.runs.list())
    with pytest.raises(UserErrorException, match='pipeline endpoint "training" is disabled'):
        endpoint.submit("via-endpoint")
    assert len(history.runs.list()) == before


def test_an_endpoint_name_is_unique_at_publishing_and_renaming(ws, project, history):
    published = _pipeline(ws, project).publish("trainer")
    training = PipelineEndpoint.publish(ws, "training", None, published)
    scoring = PipelineEndpoint.publish(ws, "scoring", None, published)
    with pytest.raises(UsageError, match='already named "training"'):
        scoring.set_name("training")
    scoring.archive()
    with pytest.raises(UsageError, match='already named "training"'):
        scoring.reactivate("training")
    assert (PipelineEndpoint.get(ws, id=scoring.id).name, scoring.status) == ("scoring", "Disabled")
    training.set_name("training")  # its own name is not taken
    scoring.reactivate("inference")
    assert sorted(e.name for e in PipelineEndpoint.list(ws)) == ["inference", "training"]


def test_a_run_is_published_with_its_snapshots_and_parameter_values(ws, project, history):
    run = Experiment(ws, "plain").submit(_pipeline(ws, project), pipeline_parameters={"n": 4})
    assert run.wait_for_completion(show_output=False) == "Completed"
    published = run.publish_pipeline("from-run", "its description", "1")
    project("src/train.py", SCRIPT.format(tag="edited"))
    again = published.submit(ws, "again")
    assert again.wait_for_completion(show_output=False) == "Completed"
    assert _step_status(history, again) == "Reused"
    with pytest.raises(UserErrorException, match='"n" cannot be changed'):
        published.submit(ws, "again", pipeline_parameters={"n": 5})
    # Its own value as text (a REST body's "ParameterAssignments": {"n": "4"}) is that value: it was refused.
    same = published.submit(ws, "again", pipeline_parameters={"n": "4"})
    assert same.wait_for_completion(show_output=False) == "Completed"


def test_gc_keeps_what_a_published_pipeline_needs(ws, project, history, localpipe):
    published = _pipeline(ws, project).publish("trainer")
    assert localpipe("gc", "--keep-last", "0", check=True).returncode == 0
    run = published.submit(ws, "after-gc")
    assert run.wait_for_completion(show_output=False) == "Completed"
    assert "v1" in _log(history, run)


def test_rest_submission_needs_the_token_and_answers_as_azure(ws, project, history, monkeypatch):
    """A POST to ``published.endpoint`` as `localpipe serve` routes it: the function behind the route."""
    import stat

    from localpipe import InteractiveLoginAuthentication
    from localpipe.client.rest import rest_submit
    from localpipe.compat.names import MODULES

    assert MODULES["azureml.core.authentication"]["InteractiveLoginAuthentication"] == (
        "localpipe.client.rest:InteractiveLoginAuthentication"
    )
    published = _pipeline(ws, project).publish("trainer")
    endpoint = PipelineEndpoint.publish(ws, "training", None, published)
    monkeypatch.chdir(ws.root)
    header = InteractiveLoginAuthentication().get_authentication_header()
    token_file = ws.state_dir / "api-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert header == {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    body = {"ExperimentName": "rest", "RunSource": "SDK", "ParameterAssignments": {"n": 45}, "Description": "by REST"}

    assert rest_submit(ws, "published", published.id, body, None)[0] == 401
    assert rest_submit(ws, "published", published.id, body, "Bearer not-the-token")[0] == 401
    assert history.runs.list() == []
    status, answer = rest_submit(ws, "published", published.id, body, header["Authorization"])
    assert status == 200 and answer == {"Id": "1", "Status": "NotStarted"}, answer  # a string, as Azure's ids
    run = PipelineRun(Experiment(ws, "rest"), answer["Id"])
    assert run.wait_for_completion(show_output=False) == "Completed"
    assert "v1 ['--n', '45']" in _log(history, run) and run.description == "by REST"

    status, answer = rest_submit(ws, "published", "no-such-id", body, header["Authorization"])
    assert (status, answer["error"]["code"]) == (404, "NotFound")
    status, answer = rest_submit(ws, "published", published.id, {**body, "ParameterAssignments": {"epochs": 1}},
                                 header["Authorization"])  # fmt: skip
    assert status == 400 and answer["error"]["message"].startswith('parameter "epochs" is not a parameter of')
    assert rest_submit(ws, "published", published.id, {"ParameterAssignments": {}}, header["Authorization"])[0] == 400
    unsaved = {"file": {"SavedDataSetReference": {"Id": None}}}  # the id of a dataset not registered
    status, answer = rest_submit(ws, "published", published.id, {**body, "DataSetDefinitionValueAssignments": unsaved},
                                 header["Authorization"])  # fmt: skip
    assert status == 400 and answer["error"]["message"].startswith('DataSetDefinitionValueAssignments "file" has no')
    status, answer = rest_submit(ws, "endpoint", endpoint.id, {"ExperimentName": "rest"}, header["Authorization"])
    assert status == 200
    assert PipelineRun(Experiment(ws, "rest"), answer["Id"]).wait_for_completion(show_output=False) == "Completed"
    endpoint.add(_pipeline(ws, project, tag="v2").publish("trainer", version="2"))
    status, answer = rest_submit(ws, "endpoint-name", "training", {"ExperimentName": "rest"}, header["Authorization"],
                                 version="1")  # fmt: skip
    assert status == 200
    by_name = PipelineRun(Experiment(ws, "rest"), answer["Id"])
    assert by_name.wait_for_completion(show_output=False) == "Completed" and "v2" in _log(history, by_name)
    status, answer = rest_submit(ws, "endpoint", endpoint.id, {"ExperimentName": "rest"}, header["Authorization"], "7")
    assert status == 400 and 'has no version "7"' in answer["error"]["message"]
    endpoint.disable()
    status, answer = rest_submit(ws, "endpoint", endpoint.id, {"ExperimentName": "rest"}, header["Authorization"])
    assert status == 400 and "is disabled" in answer["error"]["message"]
    assert len(history.runs.list()) == 3


def test_serve_answers_rest_submissions_and_fires_schedules(ws, project, history, monkeypatch):
    """`localpipe serve` as a real process: a script written for Azure's endpoint (`requests.post`
    with the authentication header) starts a run; no or a wrong token is 401, an unknown pipeline 404;
    and a datastore schedule fires on a new file while the server runs."""
    import re
    import subprocess
    import sys

    import requests

    from localpipe import DataPath, InteractiveLoginAuthentication
    from localpipe.client.schedules import Schedule
    from localpipe.sdk.data import DataPathComputeBinding

    from .conftest import wait_for

    published = _pipeline(ws, project).publish("trainer")
    project("src/read.py", "import sys\nprint('read', open(sys.argv[1]).read())\n")
    incoming = ws.state_dir / "datastores" / "workspaceblobstore" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "seed.txt").write_text("seed")
    param = PipelineParameter("input_datapath", default_value=DataPath(ws.get_default_datastore(), "incoming/seed.txt"))
    bound = (param, DataPathComputeBinding(mode="mount"))
    reader = Pipeline(ws, [PythonScriptStep("read.py", name="read", source_directory=str(ws.root / "src"),
                                            inputs=[bound], arguments=[bound])]).publish("reader")  # fmt: skip
    Schedule.create(ws, "on-upload", reader.id, "uploads", datastore=ws.get_default_datastore(),
                    path_on_datastore="incoming", data_path_parameter_name="input_datapath")  # fmt: skip

    server = subprocess.Popen([sys.executable, "-m", "localpipe", "serve", "--port", "0", "-w", str(ws.root)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        port = re.search(r"http://127\.0\.0\.1:(\d+)/", server.stdout.readline()).group(1)
        url = published.endpoint.replace("127.0.0.1:8765", f"127.0.0.1:{port}")
        assert url.endswith(f"/pipelines/v1.0/PipelineRuns/PipelineSubmit/{published.id}")
        monkeypatch.chdir(ws.root)
        auth_header = InteractiveLoginAuthentication().get_authentication_header()
        body = {"ExperimentName": "rest", "ParameterAssignments": {"n": 7}}
        assert requests.post(url, json=body, timeout=30).status_code == 401
        assert requests.post(url, headers={"Authorization": "Bearer nope"}, json=body, timeout=30).status_code == 401
        unknown = requests.post(url.replace(published.id, "no-such-id"), headers=auth_header, json=body, timeout=30)
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "NotFound")
        answer = requests.post(url, headers=auth_header, json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        run = PipelineRun(Experiment(ws, "rest"), answer.json()["Id"])
        assert run.wait_for_completion(show_output=False) == "Completed"
        assert "v1 ['--n', '7']" in _log(history, run)

        (incoming / "new.txt").write_text("fresh data")
        wait_for(lambda: Schedule.get(ws, Schedule.list(ws)[0].id).get_last_pipeline_run() is not None, timeout=30,
                 what="the schedule to fire on the new file")  # fmt: skip
        fired = Schedule.list(ws)[0].get_last_pipeline_run()
        assert fired.wait_for_completion(show_output=False) == "Completed"
        assert "read fresh data" in (history.layout.step_dir(fired.id, "read") / "stdout.log").read_text()
    finally:
        server.terminate()
        assert server.wait(timeout=15) in (0, -15), server.stdout.read()


def test_on_a_public_address_rest_needs_the_bearer_token_alone(ws, project, monkeypatch):
    """A studio bound to another address than 127.0.0.1 wants its own token for every page; a REST
    submission from another machine carries the workspace's bearer token only, as on Azure."""
    from starlette.testclient import TestClient

    from localpipe import InteractiveLoginAuthentication
    from localpipe.studio.app import create_app
    from localpipe.studio.rest import BASE, rest_routes

    published = _pipeline(ws, project).publish("trainer")
    monkeypatch.chdir(ws.root)
    header = InteractiveLoginAuthentication().get_authentication_header()
    app = create_app(ws.state_dir, "studio-token", public=True, hosts=None, extra_routes=rest_routes(ws),
                     self_authenticating=(BASE + "/",))  # fmt: skip
    with TestClient(app, base_url="http://10.1.2.3:8765") as client:
        assert client.get("/runs.json").status_code == 401  # the studio's pages want its token
        url = f"{BASE}/PipelineSubmit/{published.id}"
        assert client.post(url, json={"ExperimentName": "remote"}).status_code == 401  # no bearer token
        answer = client.post(url, headers=header, json={"ExperimentName": "remote"})
        assert answer.status_code == 200, answer.text
    run = PipelineRun(Experiment(ws, "remote"), answer.json()["Id"])
    assert run.wait_for_completion(show_output=False) == "Completed"
