"""Official Azure ML pipeline samples (tests/samples/, copied unchanged from
Azure/MachineLearningNotebooks) run cell by cell in a real Jupyter kernel, in one workspace, as a
user runs them: each to its end, or to its first REST call of a published pipeline, which finds no
`localpipe serve` to answer it. The network is the one stand-in (tests/samples/README.md)."""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from localpipe.sdk.environment import DEFAULT_CPU_IMAGE

SAMPLES = Path(__file__).parent / "samples"

# Sent to the kernel's interpreter: the samples' public files are asked of the local server, through
# the real urllib and requests (ETags and all), since CI has no internet.
OFFLINE = """
import os, urllib.parse, urllib.request
_server = os.environ["SAMPLES_DATA_SERVER"]
_hosts = {"dprepdata.blob.core.windows.net", "raw.githubusercontent.com"}

def _local(url):
    parts = urllib.parse.urlsplit(url)
    return _server + "/" + parts.path.rsplit("/", 1)[-1] if parts.hostname in _hosts else url

_urlopen = urllib.request.urlopen
def urlopen(request, *args, **kwargs):
    if isinstance(request, urllib.request.Request):
        request.full_url = _local(request.full_url)
    else:
        request = _local(request)
    return _urlopen(request, *args, **kwargs)
urllib.request.urlopen = urlopen

try:
    import requests
    _get = requests.get
    requests.get = lambda url, *args, **kwargs: _get(_local(url), *args, **kwargs)
except ImportError:
    pass
"""


@pytest.fixture(scope="module")
def data_server(tmp_path_factory):
    """The samples' two public files, stand-ins of their shape, served on 127.0.0.1 with ETags."""
    from sklearn.datasets import load_iris

    folder = tmp_path_factory.mktemp("public-data")
    with open(folder / "Titanic.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["PassengerId", "Survived", "Pclass", "Name", "Sex", "Age", "Fare", "Embarked"])
        for number in range(1, 41):
            writer.writerow(
                [number, number % 2, 1 + number % 3, f"P{number}", "mf"[number % 2], 20 + number, 7.25, "S"]
            )
    iris = load_iris(as_frame=True).frame
    iris.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    iris.to_csv(folder / "iris.csv", index=False)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = folder / urllib.parse.unquote(self.path.lstrip("/"))
            if not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            fresh = self.headers.get("If-None-Match") == etag
            self.send_response(304 if fresh else 200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0" if fresh else str(len(body)))
            self.end_headers()
            if not fresh:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def samples(tmp_path_factory, data_server):
    """Run ``notebook`` in the module's one workspace; returns the executed notebook."""
    root = tmp_path_factory.mktemp("samples-ws")
    shutil.copytree(SAMPLES, root, dirs_exist_ok=True)
    subprocess.run([sys.executable, "-m", "localpipe", "init", str(root)], check=True, capture_output=True)
    shim = subprocess.run(
        [sys.executable, "-m", "localpipe", "azureml-path"], check=True, capture_output=True, text=True
    ).stdout.strip()
    offline = root / ".offline"
    offline.mkdir()
    (offline / "sitecustomize.py").write_text(OFFLINE)

    done: dict[str, tuple] = {}

    def run(notebook: str):
        if notebook in done:  # each notebook runs once in the module's workspace, whoever asks first
            return done[notebook]
        executed = nbformat.read(root / notebook, as_version=4)
        client = NotebookClient(
            executed, timeout=300, allow_errors=True, kernel_name="python3", resources={"metadata": {"path": str(root)}}
        )
        env = {"PYTHONPATH": f"{shim}:{offline}", "SAMPLES_DATA_SERVER": data_server}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            client.execute()
        done[notebook] = executed, _finished_runs(root)
        return done[notebook]

    return run


def _finished_runs(root: Path) -> dict[str, list[str]]:
    """Experiment -> the statuses of its runs, once each has ended: in Jupyter, RunDetails.show()
    returns at once, so a notebook may end while its runs go on (as on Azure)."""
    from localpipe import Workspace

    statuses: dict[str, list[str]] = {}
    for name, experiment in Workspace(root).experiments.items():
        for run in experiment.get_runs():
            statuses.setdefault(name, []).append(run.wait_for_completion(show_output=False, raise_on_error=False))
    return statuses


def _image_present(image: str) -> bool:
    return shutil.which("docker") is not None and (
        subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0
    )


def errors(notebook) -> list[tuple[int, str]]:
    """(cell index, "Name: value") of every cell that raised."""
    return [
        (index, f"{output['ename']}: {output['evalue']}")
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]


def printed(notebook) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


def stops_at_rest_call(notebook, runs, failing: tuple[str, ...] = ()) -> None:
    """Every cell ran, publishing included, until the first that posts to the published pipeline's
    endpoint: no `localpipe serve` runs in the test, so the connection is refused. The runs of the
    experiments ``failing`` fail, as they would on Azure; every other run completes."""
    found = errors(notebook)
    assert found, "the notebook posts to a REST endpoint: it must stop there"
    index, first = found[0]
    assert first.startswith("ConnectionError:") and "127.0.0.1" in first, found
    assert "requests.post(" in "".join(notebook.cells[index].source)
    assert "You can perform HTTP POST on URL http://127.0.0.1:" in printed(notebook)
    assert all(status == "Failed" for name in failing for status in runs[name]), runs
    expected = [status for name, statuses in runs.items() if name not in failing for status in statuses]
    assert all(status == "Completed" for status in expected), runs


def test_getting_started_runs_to_its_end(samples):
    notebook, runs = samples("aml-pipelines-getting-started.ipynb")
    assert errors(notebook) == []
    output = printed(notebook)
    assert "Upload call completed" in output and "Pipeline validation complete" in output
    assert runs == {"Hello_World1": ["Completed"], "Hello_World2": ["Completed"]}
    # Its steps ask for Docker with Azure ML's base image, which no machine here has (nor can pull):
    # they run outside Docker, in an environment built with scikit-learn, and one warning says how
    # to run them in the image (docs/docker.md).
    if not _image_present(DEFAULT_CPU_IMAGE):
        assert f"Azure ML's base image {DEFAULT_CPU_IMAGE} is not on this machine" in output
        assert f"docker pull {DEFAULT_CPU_IMAGE}" in output


def test_data_dependency_steps_run_to_the_end_reading_what_getting_started_uploaded(samples):
    """It mounts the Titanic file the first sample uploaded into the shared workspace's blob store."""
    samples("aml-pipelines-getting-started.ipynb")
    notebook, runs = samples("aml-pipelines-with-data-dependency-steps.ipynb")
    assert errors(notebook) == []
    output = printed(notebook)
    assert "path on datastore: " in output  # its loop over get_outputs() and get_port_data_reference()
    assert runs["Data_dependency_sample"] == ["Completed"]


def test_the_datapath_and_pipelineparameter_sample_runs_to_its_rest_call(samples):
    stops_at_rest_call(*samples("aml-pipelines-showcasing-datapath-and-pipelineparameter.ipynb"))


def test_the_dataset_and_pipelineparameter_sample_runs_to_its_rest_call(samples):
    """Its datasets come from public URLs (fetched and cached) and are swapped through pipeline_parameters."""
    notebook, runs = samples("aml-pipelines-showcasing-dataset-and-pipelineparameter.ipynb")
    stops_at_rest_call(notebook, runs)
    assert runs["publishedexperiment"] == ["Completed"]  # the published pipeline, given other datasets


def test_the_publish_and_run_sample_runs_to_its_rest_call(samples):
    """It publishes a pipeline, and the pipeline of a run just submitted, before its REST call."""
    stops_at_rest_call(*samples("aml-pipelines-publish-and-run-using-rest-endpoint.ipynb"))


def test_the_schedule_sample_runs_to_its_end(samples):
    """It publishes, makes an endpoint, creates, lists, disables, enables and updates recurring
    schedules, a datastore schedule on workspaceblobstore and one of the endpoint. No runner runs
    in the test, so none fires."""
    notebook, runs = samples("aml-pipelines-setup-schedule-for-a-published-pipeline.ipynb")
    assert errors(notebook) == []
    output = printed(notebook)
    assert "New frequency: Hour" in output and "New status is: Disabled" in output
    assert "Got all schedules for pipeline endpoint:" in output and "Count: 1" in output
    assert "Schedule-run-sample" not in runs  # its experiment: nothing fired


def test_the_versioned_endpoints_sample_runs_to_its_rest_call(samples):
    """Versions, the default, get_pipeline, list_versions, set_name; then a POST to the endpoint by name.
    Its later cells submit the endpoint: its train.py opens --input_data, which the sample's step
    never passes, so those runs fail as they do on Azure."""
    notebook, runs = samples("aml-pipelines-setup-versioned-pipeline-endpoints.ipynb")
    stops_at_rest_call(notebook, runs, failing=("NewName", "submit_endpoint_sample"))
    assert len(runs["NewName"]) == 2 and len(runs["submit_endpoint_sample"]) == 1
    assert "PipelineEndpointSubmit/Name?name=NewName&pipelineVersion=0" in printed(notebook)
