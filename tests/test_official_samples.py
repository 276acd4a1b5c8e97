"""Official Azure ML pipeline samples (tests/samples/, copied unchanged from
Azure/MachineLearningNotebooks) run cell by cell in a real Jupyter kernel, in one workspace, as a
user runs them: each to its end, or to the named cell where it stops and why. A notebook that posts
to a published pipeline's REST endpoint runs with `localpipe serve` running for the workspace, as
its user would have it. The network is the one stand-in (tests/samples/README.md)."""

from __future__ import annotations

import ast
import contextlib
import csv
import hashlib
import itertools
import math
import re
import shutil
import struct
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
# setup-environment's notebook, which the others ask their user to run first: it names the workspace in
# its .azureml/config.json, which their Workspace.from_config() then reads. Run first in the workspace.
SETUP = "configuration.ipynb"
# The columns of dominicks_OJ.csv, which the partition-per-column sample reads (its output names them).
OJ_COLUMNS = ["WeekStarting", "Store", "Brand", "Quantity", "logQuantity", "Advert", "Price", "Age60", "COLLEGE",
              "INCOME", "Hincome150", "Large HH", "Minorities", "WorkingWoman", "SSTRDIST", "SSTRVOL", "CPDIST5",
              "CPWVOL5"]  # fmt: skip

# Sent to the kernel's interpreter: the samples' public files are asked of the local server, through
# the real urllib and requests (ETags and all), since CI has no internet.
OFFLINE = """
import os, urllib.parse, urllib.request
_server = os.environ["SAMPLES_DATA_SERVER"]
_hosts = {"dprepdata.blob.core.windows.net", "raw.githubusercontent.com"}
_containers = {"azuremldownloads.blob.core.windows.net"}  # listed too: their paths and queries are kept

def _local(url):
    parts = urllib.parse.urlsplit(url)
    if parts.hostname in _containers:
        return _server + parts.path + ("?" + parts.query if parts.query else "")
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
    """The samples' three public files, stand-ins of their shape, served on 127.0.0.1 with ETags."""
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
    with open(
        folder / "dominicks_OJ.csv", "w", newline=""
    ) as handle:  # orange juice sales: 3 stores x 3 brands x 4 weeks
        writer = csv.writer(handle)
        writer.writerow(OJ_COLUMNS)
        for week, store, brand in itertools.product(range(4), (2, 5, 8), ("dominicks", "minute.maid", "tropicana")):
            quantity = 1000 + 37 * week + 11 * store + len(brand)
            writer.writerow([f"1990-06-{14 + 7 * week}", store, brand, quantity, round(math.log(quantity), 4), 1, 2.5]
                            + [round(0.1 * store + 0.01 * n, 3) for n in range(11)])  # fmt: skip

    # The image-classification sample's folder of Fashion-MNIST, azuremldownloads' demo/mnist-fashion:
    # the four files in their format (idx), of three images each (the sample stops before reading them).
    fashion = folder / "demo" / "mnist-fashion"
    fashion.mkdir(parents=True)
    for part in ("train", "t10k"):
        (fashion / f"{part}-images-idx3-ubyte").write_bytes(struct.pack(">4I", 2051, 3, 28, 28) + bytes(3 * 784))
        (fashion / f"{part}-labels-idx1-ubyte").write_bytes(struct.pack(">2I", 2049, 3) + bytes([0, 1, 2]))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            address = urllib.parse.urlsplit(self.path)
            path = folder / urllib.parse.unquote(address.path.lstrip("/"))
            query = urllib.parse.parse_qs(address.query)
            if query.get("comp") == ["list"]:  # the Blob service's List Blobs, in one page
                self.answer(list_blobs(path, query["prefix"][0]))
                return
            if not path.is_file():
                self.send_error(404)
                return
            self.answer(path.read_bytes())

        def answer(self, body: bytes):
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

    def list_blobs(container: Path, prefix: str) -> bytes:
        names = sorted(p.relative_to(container).as_posix() for p in container.rglob("*") if p.is_file())
        blobs = "".join(f"<Blob><Name>{name}</Name></Blob>" for name in names if name.startswith(prefix))
        return f"<EnumerationResults><Blobs>{blobs}</Blobs><NextMarker/></EnumerationResults>".encode()

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
    for genre, size in (("disco", 3000), ("orchestra", 2000), ("piano", 1000), ("spirituality", 500)):
        # The partition sample's test_files/: stand-ins of its four songs (it sums their sizes).
        (root / "test_files" / genre).mkdir(parents=True)
        (root / "test_files" / genre / f"{genre}.wav").write_bytes(b"RIFF" + bytes(size))
    offline = root / ".offline"
    offline.mkdir()
    (offline / "sitecustomize.py").write_text(OFFLINE)

    done: dict[str, tuple] = {}

    def run(notebook: str):
        if notebook in done:  # each notebook runs once in the module's workspace, whoever asks first
            return done[notebook]
        if SETUP not in done and notebook != SETUP:  # first, as the samples ask: it writes config.json
            run(SETUP)
        executed = nbformat.read(root / notebook, as_version=4)
        client = NotebookClient(
            executed, timeout=300, allow_errors=True, kernel_name="python3", resources={"metadata": {"path": str(root)}}
        )
        # MORE: manage-runs runs `!more hello.py` in the kernel's terminal, where util-linux's more
        # waits for a key at the end of the file (as a terminal on Azure's compute instance would not).
        env = {"PYTHONPATH": f"{shim}:{offline}", "SAMPLES_DATA_SERVER": data_server, "MORE": "-e"}
        posts = any("requests.post(" in cell.source for cell in executed.cells)
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            with serving(root) if posts else contextlib.nullcontext() as url:
                if url:  # the endpoints the notebook prints name this server, as they would for its user
                    patch.setenv("LOCALPIPE_SERVER_URL", url)
                client.execute()
        done[notebook] = executed, _finished_runs(root), _rest_run(root, executed)
        return done[notebook]

    run.root = root  # the module's workspace, for what a test asks of it after a notebook
    return run


@contextlib.contextmanager
def serving(root: Path):
    """`localpipe serve` for the workspace, as a real process on a free port, stopped however the
    notebook ends; its address. It gets the environment the kernel gets (the offline network)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "localpipe", "serve", "--port", "0", "-w", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        link = server.stdout.readline()
        port = re.search(r"http://127\.0\.0\.1:(\d+)/", link)
        assert port, f"localpipe serve printed no link: {link!r}"
        threading.Thread(target=server.stdout.read, daemon=True).start()  # what it prints next never blocks it
        yield f"http://127.0.0.1:{port.group(1)}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _finished_runs(root: Path) -> dict[str, list[str]]:
    """Experiment -> the statuses of its runs, once each has ended: in Jupyter, RunDetails.show()
    returns at once, so a notebook may end while its runs go on (as on Azure)."""
    from localpipe import Workspace

    statuses: dict[str, list[str]] = {}
    for name, experiment in Workspace(root).experiments.items():
        for run in experiment.get_runs():
            run.wait_for_completion(show_output=False, raise_on_error=False)  # a script run's gives its details
            statuses.setdefault(name, []).append(run.get_status())
    return statuses


def _rest_run(root: Path, notebook) -> dict | None:
    """The run the notebook's REST call started (the id it prints), once ended: its status, its
    parameters and what its steps printed; None when it printed no id."""
    from localpipe import PipelineRun, Workspace

    submitted = re.search(r"Submitted pipeline run:\s+(\S+)", printed(notebook))
    if not submitted:
        return None
    run = PipelineRun.get(Workspace(root), submitted.group(1))
    status = run.wait_for_completion(show_output=False, raise_on_error=False)
    logs = [log for step in run.get_steps() for log in step.get_details_with_logs()["logFiles"].values()]
    return {"status": status, "parameters": run.get_details()["parameters"], "printed": "".join(logs)}


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


def shown(notebook) -> list[str]:
    """The text of what each cell's last expression showed (its ``execute_result``)."""
    return [
        output["data"]["text/plain"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "execute_result"
    ]


def printed(notebook) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


def ran_through_rest(notebook, runs, rest) -> None:
    """Every cell ran, publishing and the POST to the endpoint (with the header the notebook's
    InteractiveLoginAuthentication gives) included: `localpipe serve` answered it with the id of a
    run that completed, as did every other run of the workspace."""
    assert errors(notebook) == []
    assert "You can perform HTTP POST on URL http://127.0.0.1:" in printed(notebook)
    assert rest is not None and rest["status"] == "Completed", rest
    assert all(status == "Completed" for statuses in runs.values() for status in statuses), runs


def test_getting_started_runs_to_its_end(samples):
    notebook, runs, _ = samples("aml-pipelines-getting-started.ipynb")
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
    notebook, runs, _ = samples("aml-pipelines-with-data-dependency-steps.ipynb")
    assert errors(notebook) == []
    output = printed(notebook)
    assert "path on datastore: " in output  # its loop over get_outputs() and get_port_data_reference()
    assert runs["Data_dependency_sample"] == ["Completed"]


def test_the_datapath_and_pipelineparameter_sample_runs_to_its_end_through_rest(samples):
    """Its REST call gives the published pipeline another DataPath and string; then it creates and
    disables a datastore schedule."""
    notebook, runs, rest = samples("aml-pipelines-showcasing-datapath-and-pipelineparameter.ipynb")
    ran_through_rest(notebook, runs, rest)
    datapath = {"datapath": {"datastore": "workspaceblobstore", "path_on_datastore": "sample_datapath3"}}
    assert rest["parameters"] == {"input_datapath": datapath, "input_string": "sample_string3"}, rest
    assert "Sample string argument  : sample_string3" in rest["printed"], rest
    assert "Created schedule with id: " in printed(notebook)


def test_the_dataset_and_pipelineparameter_sample_runs_to_its_end_through_rest(samples):
    """Its datasets come from public URLs (fetched and cached) and are swapped through
    pipeline_parameters by the SDK. Its REST call names the iris datasets by `iris_file_ds.id`: the
    submissions that used them saved them and gave them ids, as Azure does, and the run the call
    starts reads them."""
    notebook, runs, rest = samples("aml-pipelines-showcasing-dataset-and-pipelineparameter.ipynb")
    ran_through_rest(notebook, runs, rest)
    for name in ("file_ds_param", "tabular_ds_param"):  # the iris datasets, not the Titanic defaults
        assert [Path(path).name for path in rest["parameters"][name]["dataset"]["paths"]] == ["iris.csv"], rest
    assert runs["showcasing-dataset"] == ["Completed", "Completed"], runs
    assert runs["publishedexperiment"] == ["Completed"], runs


def test_the_publish_and_run_sample_runs_to_its_end_through_rest(samples):
    """It publishes a pipeline, and the pipeline of a run just submitted; its REST call sets
    pipeline_arg."""
    notebook, runs, rest = samples("aml-pipelines-publish-and-run-using-rest-endpoint.ipynb")
    ran_through_rest(notebook, runs, rest)
    assert rest["parameters"] == {"pipeline_arg": 45}, rest
    assert "Argument 4: 45" in rest["printed"], rest


def test_the_schedule_sample_runs_to_its_end(samples):
    """It publishes, makes an endpoint, creates, lists, disables, enables and updates recurring
    schedules, a datastore schedule on workspaceblobstore and one of the endpoint. No runner runs
    in the test, so none fires."""
    notebook, runs, _ = samples("aml-pipelines-setup-schedule-for-a-published-pipeline.ipynb")
    assert errors(notebook) == []
    output = printed(notebook)
    assert "New frequency: Hour" in output and "New status is: Disabled" in output
    assert "Got all schedules for pipeline endpoint:" in output and "Count: 1" in output
    assert "Schedule-run-sample" not in runs  # its experiment: nothing fired


def test_the_versioned_endpoints_sample_is_refused_at_its_rest_call_and_runs_on(samples):
    """Versions, the default, get_pipeline, list_versions, set_name; then a POST to the endpoint by
    name with ParameterAssignments {"1": "united", "2": "city"}, which its pipeline does not have:
    `localpipe serve` answers 400 and records nothing, and the next cell, reporting the bad
    response, raises NameError (it names `rest_endpoint`, which the sample never defines). Its later
    cells submit the endpoint: its train.py opens --input_data, which the sample's step never
    passes, so those runs fail as they do on Azure."""
    notebook, runs, rest = samples("aml-pipelines-setup-versioned-pipeline-endpoints.ipynb")
    [(index, error)] = errors(notebook)
    assert error == "NameError: name 'rest_endpoint' is not defined"
    assert "response.raise_for_status()" in notebook.cells[index].source
    [traceback] = [out["traceback"] for out in notebook.cells[index].outputs if out.output_type == "error"]
    assert "400 Client Error" in "".join(traceback)
    assert "You can perform HTTP POST on URL http://127.0.0.1:" in printed(notebook)
    assert "PipelineEndpointSubmit/Name?name=NewName&pipelineVersion=0" in printed(notebook)
    assert rest is None and "default_pipeline" not in runs  # the refused POST recorded no run
    assert runs["NewName"] == ["Failed", "Failed"] and runs["submit_endpoint_sample"] == ["Failed"], runs


def test_the_file_dataset_partition_sample_runs_to_its_end(samples):
    """Azure's parallel-run sample over a FileDataset partitioned by folder (partition_keys): one
    mini-batch per user and genre, run(mini_batch, mini_batch_context), the output read where
    PortDataReference.download puts it (local_path/path_on_datastore)."""
    notebook, runs, _ = samples("file-dataset-partition-per-folder.ipynb")
    assert errors(notebook) == []
    assert "Prediction has 6 rows" in printed(notebook)
    assert runs["file-dataset-partition"] == ["Completed"]


def test_the_tabular_dataset_partition_sample_runs_to_its_end(samples):
    """Azure's parallel-run sample over a TabularDataset partitioned by column
    (TabularDataset.partition_by, then partition_keys): each store and brand's rows summed."""
    notebook, runs, _ = samples("tabular-dataset-partition-per-column.ipynb")
    assert errors(notebook) == []
    assert "Prediction has  36  rows" in printed(notebook)
    assert runs["tabular-dataset-partition"] == ["Completed"]


def test_the_pipeline_drafts_sample_runs_to_its_end(samples):
    """It drafts a pipeline, lists the drafts tagged dev, gets one by id, updates it (a name, a
    description, a pipeline with a new step), submits a run of it and publishes it. Its train.py
    opens --input_data, which its step never passes, so its run fails as it does on Azure."""
    from localpipe import PipelineDraft, PipelineRun, PublishedPipeline, Workspace

    notebook, runs, _ = samples("aml-pipelines-how-to-use-pipeline-drafts.ipynb")
    assert errors(notebook) == []
    assert "Pipeline(Name: TestPipelineDraft,\nId: " in printed(notebook)
    assert "Tags: {'dev': 'true'},\nProperties: {'train': 'value'},\nLast Submitted Pipeline Run Id: None)" in printed(
        notebook
    )
    ws = Workspace(samples.root)
    [draft] = PipelineDraft.list(ws, tags={"dev": "true"})
    assert (draft.name, draft.description, draft.properties) == (
        "UpdatedPipelineDraft",
        "has updated train step",
        {"train": "value"},
    )
    assert list(draft.get_graph().steps) == ["New_Training_Step"]
    run_shown, published_shown = shown(notebook)
    run = PipelineRun.get(ws, draft.last_submitted_pipeline_run_id)
    assert run_shown == f"PipelineRun(id={run.id}, experiment='pipeline_draft_sample')"
    assert runs["pipeline_draft_sample"] == ["Failed"], runs
    [step] = run.get_steps()
    assert step.name == "New_Training_Step" and "TypeError" in "".join(
        step.get_details_with_logs()["logFiles"].values()
    )
    [published] = [p for p in PublishedPipeline.list(ws) if p.name == "UpdatedPipelineDraft"]
    assert published_shown == repr(published) and published.get_step_names() == ["New_Training_Step"]


def test_the_modulestep_sample_runs_to_its_end(samples):
    """It creates a module, publishes two versions of calc/calculate.py (the second its default), and
    runs three ModuleSteps of it: by version object, by module (its default) and by module and
    version, each summing and multiplying the two numbers the step before wrote. The three steps,
    named after the module, are told apart as AddAndMultiply, AddAndMultiply_2, AddAndMultiply_3."""
    from localpipe import Workspace

    notebook, runs, _ = samples("aml-pipelines-how-to-use-modulestep.ipynb")
    assert errors(notebook) == []
    # AmlCompute(ws, "cpu-cluster") raises until a notebook of the workspace creates it in its bare except.
    assert re.search(r"(Found existing|Creating new) compute target: cpu-cluster\n", printed(notebook))
    assert runs["testmodulestesp"] == ["Completed"], runs
    [run] = Workspace(samples.root).experiments["testmodulestesp"].get_runs()
    assert shown(notebook)[-1] == repr(run)  # its last cell shows the run it submitted
    assert run.get_details()["parameters"] == {"initialNum": 17}
    written = {}
    for step in run.get_steps():
        assert step.get_status() == "Completed", step.name
        outputs = {name: step.get_output_data(name).path / name for name in ("out_sum", "out_prod")}
        written[step.name] = tuple(int(outputs[name].read_text()) for name in ("out_sum", "out_prod"))
    # calculate.py: 17 (initialNum's default) and 2, then the sum and product of the step before's, twice.
    assert written == {"AddAndMultiply": (19, 34), "AddAndMultiply_2": (53, 646), "AddAndMultiply_3": (699, 34238)}


def test_the_logging_api_sample_runs_to_its_end(samples):
    """An interactive run (start_logging) logs scalars, lists, rows, tables, a matplotlib figure and a
    file; the notebook fetches it again as Run(experiment, run_id), reads its metrics and files,
    downloads them and tags it."""
    from localpipe import Workspace

    notebook, runs, _ = samples("logging-api.ipynb")
    assert errors(notebook) == []
    assert runs["logging-api-test"] == ["Completed"], runs
    [run] = Workspace(samples.root).experiments["logging-api-test"].get_runs()
    assert repr(run) in shown(notebook)  # `fetched_run`, the same run found again by its id
    metrics = run.get_metrics()
    assert (metrics["Category"], metrics["scale factor"], metrics["Magic Number"]) == ("Red", 2, 84)
    assert metrics["Fibonacci"] == [2 * n for n in (0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89)]
    assert len(metrics["Sigmoid"]) == 20 and metrics["Sigmoid"][10] == 0.5
    assert metrics["Cosine Wave"]["angle"] == metrics["Sine Wave"]["angle"] == [float(i) for i in range(-10, 10)]
    for name in ("Accuracy", "Precision", "Recall"):  # 1000 rows of 15 columns each, logged row by row
        assert len(metrics[name]) == 15 and all(len(column) == 1000 for column in metrics[name].values())
    assert "{'scale factor': 2}" in shown(notebook)
    assert run.get_file_names() == ["Hyperbolic Tangent.png", "logging-api/myfile.txt"]
    assert (samples.root / "files" / "Hyperbolic Tangent.png").read_bytes().startswith(b"\x89PNG")
    assert (samples.root / "files" / "myfile.txt").read_text() == "This is an output file that will be uploaded.\n"
    assert run.get_tags() == {"My Favorite Run": None, "Competition Rank": "1"}  # text, as Azure ML keeps tags


def test_the_manage_runs_sample_runs_to_its_end(samples):
    """Interactive runs (with a `with` block and child runs), a script run of the notebook's own
    folder with properties and tags it filters by, one whose step makes five child runs, one it
    cancels and one it fails at once, whose snapshot (named at submission, as on Azure) it restores."""
    from localpipe import Workspace

    notebook, runs, _ = samples("manage-runs.ipynb")
    assert errors(notebook) == []
    assert shown(notebook)[-1] == "'snapshots'" and (samples.root / "snapshots" / "hello_with_delay.py").is_file()
    output = printed(notebook)
    assert "Is it still running? Running\nHas it completed? Completed" in output
    assert "{'author': 'azureml-user', 'azureml.runsource': 'experiment'}" in output
    assert "property \"author\" is already 'azureml-user': properties cannot change" in output
    assert "{'quality': 'fantastic run', 'worth another look': None}" in output
    # Asked as soon as it is submitted: NotStarted unless its scheduler was quicker than this process.
    assert re.search(r"Did the run start\? (NotStarted|Queued|Running)\nDid the run cancel\? Canceled\n", output)
    assert output.endswith("Failed\n")  # fail() of the run it submitted just before
    assert runs["explore-runs"] == ["Failed", "Canceled"] + ["Completed"] * 5, runs
    newest = list(Workspace(samples.root).experiments["explore-runs"].get_runs())
    parent, with_children, tagged = newest[2], newest[3], newest[4]
    assert [c.get_metrics() for c in parent.get_children()] == [{"Hello from child run": c} for c in range(5)]
    assert [c.get_metrics() for c in with_children.get_children()] == [{"Hello from child run ": c} for c in range(5)]
    assert (
        tagged.get_metrics() == {"message": "Hello from run!"} and tagged.get_properties()["author"] == "azureml-user"
    )
    assert shown(notebook).count(f"[{tagged!r}]") == 2  # get_runs by properties and tags, twice


def test_the_train_on_local_sample_runs_to_its_end(samples):
    """train.py runs three ways: in the kernel's own environment (user-managed), in one built from
    its conda dependencies, and with Docker enabled where Docker runs (outside it when Azure's image
    is absent). The notebook picks the best alpha from the last run's metrics and registers its model."""
    from localpipe import Model, Workspace

    notebook, runs, _ = samples("train-on-local.ipynb")
    assert errors(notebook) == []
    assert runs["train-on-local"] in (["Completed"] * 2, ["Completed"] * 3), runs
    ws = Workspace(samples.root)
    last = next(ws.experiments["train-on-local"].get_runs())
    metrics = last.get_metrics()
    assert len(metrics["alpha"]) == len(metrics["mse"]) == 20
    best = metrics["alpha"][metrics["mse"].index(min(metrics["mse"]))]
    assert f"When alpha is {best:0.2f}, we have min MSE {min(metrics['mse']):0.2f}." in printed(notebook)
    assert sum(name.startswith("outputs/ridge_") for name in last.get_file_names()) == 20
    model = Model(ws, "best_ridge_model")
    assert model.version == 1 and model.run_id == last.id
    assert "Registered model:\n --> Name: best_ridge_model\n --> Version: 1\n" in printed(notebook)


def test_the_first_experiment_tutorial_runs_to_its_end(samples):
    """Ten interactive runs of Ridge on the Diabetes open dataset (scikit-learn's copy of Azure's:
    the same 442 rows), each logging its alpha and RMSE and uploading its model; the tutorial finds
    the run of least RMSE and downloads its model."""
    from localpipe import Workspace

    notebook, _, _ = samples("tutorial-1st-experiment-sdk-train.ipynb")
    assert errors(notebook) == []
    runs = list(Workspace(samples.root).experiments["diabetes-experiment"].get_runs())
    metrics = {run.id: run.get_metrics() for run in runs}
    assert sorted(m["alpha_value"] for m in metrics.values()) == [a / 10 for a in range(1, 11)]
    assert all(run.get_status() == "Completed" for run in runs)
    best = min(metrics, key=lambda run_id: metrics[run_id]["rmse"])
    assert f"Best run_id: {best}\nBest run_id rmse: {metrics[best]['rmse']}" in printed(notebook)
    assert metrics[best]["alpha_value"] == 0.1  # as the tutorial's own output says, and its last cell assumes
    assert (samples.root / "model_alpha_0.1.pkl").stat().st_size > 0  # downloaded by its last cell


def test_the_scriptrun_with_data_sample_runs_to_its_end(samples):
    """A script run on cpu-cluster given a mounted FileDataset and an OutputFileDatasetConfig as its
    arguments: dummy_train.py copies the uploaded iris.csv to the output, which lands on the
    datastore at the destination the notebook named."""
    notebook, runs, _ = samples("how-to-use-scriptrun.ipynb")
    assert errors(notebook) == []
    assert runs["ScriptRun_sample"] == ["Completed"], runs
    assert re.search(r"Argument 1: \S+/workspaceblobstore/script-run/iris\.csv\n", printed(notebook))
    written = samples.root / ".localpipe" / "datastores" / "workspaceblobstore" / "sample" / "outputdataset"
    assert (written / "output.csv").read_bytes() == (SAMPLES / "iris.csv").read_bytes()


def test_the_configuration_sample_runs_to_its_end_and_names_the_workspace(samples):
    """Its Workspace(subscription_id, resource_group, workspace_name) is the workspace the notebook
    runs in, known by its placeholder names, which write_config() keeps in .azureml/config.json (the
    other samples' Workspace.from_config() reads them); its Workspace.create(..., exist_ok=True) makes
    a workspace in the folder of that name."""
    import json

    from localpipe import Workspace

    notebook, runs, _ = samples(SETUP)
    assert errors(notebook) == [] and runs == {}, runs  # run first: no run in the workspace yet
    assert "Workspace configuration succeeded. Skip the workspace creation steps below" in printed(notebook)
    names = {
        "subscription_id": "<my-subscription-id>",
        "resource_group": "<my-resource-group>",
        "workspace_name": "<my-workspace-name>",
    }
    assert json.loads((samples.root / ".azureml" / "config.json").read_text()) == names
    ws = Workspace.from_config(samples.root)
    assert (ws.root, ws.name, ws.subscription_id) == (
        samples.root.resolve(),
        "<my-workspace-name>",
        "<my-subscription-id>",
    )
    created = samples.root / "<my-workspace-name>"
    assert (created / ".localpipe").is_dir()
    assert json.loads((created / ".azureml" / "config.json").read_text()) == names


def test_the_train_on_amlcompute_sample_runs_to_its_end(samples):
    """train.py runs twice on cpu-cluster (created here, or found where another sample made it), in an
    environment built from its conda packages (Docker asked for: outside it when Azure's image is
    absent); the cluster's status, its nodes (none: nothing runs on it by then) and a scale change."""
    from localpipe import ComputeTarget, Workspace

    notebook, runs, _ = samples("train-on-amlcompute.ipynb")
    assert errors(notebook) == []
    assert runs["train-on-amlcompute"] == ["Completed", "Completed"], runs
    ws = Workspace(samples.root)
    for run in ws.experiments["train-on-amlcompute"].get_runs():
        assert run.get_details()["target"] == "cpu-cluster"
        metrics = run.get_metrics()
        assert len(metrics["alpha"]) == len(metrics["mse"]) == 20
        assert (
            round(min(metrics["mse"]), 2) == 3295.71
            and metrics["alpha"][metrics["mse"].index(min(metrics["mse"]))] == 0.4
        )
        assert sum(name.startswith("outputs/ridge_") for name in run.get_file_names()) == 20
    assert printed(notebook).count("[train.py] alpha is 0.40, and mse is 3295.71\n") == 2  # both runs' logs
    cluster = ComputeTarget(ws, "cpu-cluster")
    [status] = [ast.literal_eval(text) for text in shown(notebook) if text.startswith("{'provisioningState'")]
    assert status == cluster.get_status().serialize() and status["vmSize"] == cluster.config.vm_size, status
    assert shown(notebook)[-1] == "[]"  # list_nodes(), after both runs: no step holds the cluster
    assert cluster.config.idle_seconds_before_scaledown == 300  # its update()


def test_the_timeseries_filtering_sample_runs_to_its_end(samples):
    """It uploads its ten months of weather (weather-data/2019/MM/data.parquet), reads them with
    the month from the path (partition_format), registers them with timestamp columns, and filters
    them by time: Azure's semantics, the partition column first (time_after(May 30) keeps none of
    May's partition), boundaries included, the rows indexed by their timestamp. The datasets whose
    timestamp column was dropped refuse a time filter with DatasetTimestampMissingError."""
    import datetime

    import pandas as pd

    from localpipe import Dataset, Workspace

    notebook, _, _ = samples("tabular-timeseries-dataset-filtering.ipynb")
    assert errors(notebook) == []
    output = printed(notebook)
    assert "Uploaded 10 files to workspaceblobstore:weather-data-florida" in output
    refused = (
        "Expected exception : Cannot perform time-series filter `time_before` on dataset without timestamp columns"
    )
    assert output.count(refused) == 2  # after drop_columns and keep_columns took `datetime` away
    assert "Cleaning not allowed because partition_timestamp can be assigned only if timestamp is assigned." in output
    assert "after clean both with None/None, timestamp columns are: (None, None)" in output
    assert "after clean partition timestamp column, timestamp columns are: ('datetime', None)" in output
    dataset = Dataset.get_by_name(Workspace(samples.root), "weather-data-florida")
    assert (dataset.version, dataset.timestamp_columns) == (1, ("datetime", "partition_time"))
    frames = [pd.read_parquet(path) for path in sorted((SAMPLES / "weather-data").glob("2019/*/data.parquet"))]
    every = dataset.to_pandas_dataframe()
    assert len(every) == sum(map(len, frames)) and (every.index == every["datetime"]).all()

    def utc(*when):
        return pd.Timestamp(datetime.datetime(*when), tz="UTC")

    before = dataset.time_before(datetime.datetime(2019, 6, 12)).to_pandas_dataframe()
    assert before["datetime"].max() == utc(2019, 6, 12) and len(before) == sum(
        (frame["datetime"] <= utc(2019, 6, 12)).sum() for frame in frames
    )
    after = dataset.time_after(datetime.datetime(2019, 5, 30)).to_pandas_dataframe()
    assert after["partition_time"].min() == datetime.datetime(2019, 6, 1) and after.index[0] == utc(2019, 6, 1, 0, 53)
    between = dataset.time_between(datetime.datetime(2019, 1, 31, 23, 59, 59), datetime.datetime(2019, 2, 7))
    assert between.to_pandas_dataframe()["datetime"].agg(["min", "max"]).tolist() == [utc(2019, 2, 1), utc(2019, 2, 7)]
    assert dataset.time_recent(datetime.timedelta(days=2)).to_pandas_dataframe().empty
    [recent] = [text for text in shown(notebook) if text.startswith("Empty DataFrame")]
    assert "[0 rows x 23 columns]" in recent  # the 22 columns of the files and partition_time


def test_the_sklearn_hyperdrive_sample_runs_to_its_end(samples):
    """train_iris.py runs once in the curated azureml-sklearn-1.5 (found whatever the case of its
    name, as on Azure; numpy below 1.24, as Azure's, for its np.str and np.float), then as twelve
    HyperDrive trials over kernel and penalty; the notebook picks the trial of best Accuracy and
    registers its model. Each trial's Accuracy is what SVC gives for its values here."""
    import json

    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    from localpipe import Model, Workspace

    notebook, runs, _ = samples("train-hyperparameter-tune-deploy-with-sklearn.ipynb")
    assert errors(notebook) == []
    assert runs["train_iris"] == ["Completed", "Completed"], runs
    output = printed(notebook)
    assert "[train_iris.py] Accuracy of SVM classifier on test set: 0.97\n" in output  # linear, penalty 1.0
    ws = Workspace(samples.root)
    sweep, single = ws.experiments["train_iris"].get_runs()
    assert (sweep.type, single.get_details()["runDefinition"]["environment"]) == (
        "hyperdrive",
        {"name": "AzureML-sklearn-1.5"},
    )
    x_train, x_test, y_train, y_test = train_test_split(*datasets.load_iris(return_X_y=True), random_state=0)
    trials = sweep.get_children()
    assert len(trials) == 12 and all(trial.get_status() == "Completed" for trial in trials)
    hyperparameters = {key: json.loads(value) for key, value in sweep.get_hyperparameters().items()}
    for trial in trials:
        values = hyperparameters[trial.id]
        model = SVC(kernel=values["--kernel"], C=values["--penalty"]).fit(x_train, y_train)
        assert trial.get_metrics()["Accuracy"] == model.score(x_test, y_test), values
    best = sweep.get_best_run_by_primary_metric()
    assert best.get_metrics()["Accuracy"] == max(trial.get_metrics()["Accuracy"] for trial in trials)
    arguments = best.get_details()["runDefinition"]["arguments"]
    assert f"{arguments}\n" in output and arguments[:4] == ["--kernel", "linear", "--penalty", "1.0"]
    assert "['outputs/model.joblib', 'user_logs/std_err.txt', 'user_logs/std_out.txt']" in output
    registered = Model(ws, "sklearn-iris")
    assert (registered.version, registered.run_id) == (1, best.id)


def test_the_image_classification_sample_stops_at_its_submission_for_want_of_a_gpu(samples):
    """Its Fashion-MNIST folder on Azure's public blob storage is listed and fetched (a URL naming a
    container's folder is its files, as on Azure); its two steps are declared, the second in an
    environment of Python 3.8 and tensorflow-gpu 2.6. Both run on gpu-cluster, a Standard_NC6s_v3:
    6 CPUs, 112 GiB and a GPU a step, which this machine cannot give, so its submission is refused with
    every problem at once, the cluster its refused code created is taken back, and its later cells,
    which read the run, raise NameError."""
    from localpipe import Workspace

    notebook, runs, _ = samples("pipeline-for-image-classification.ipynb")
    [(index, refusal), *later] = errors(notebook)
    assert notebook.cells[index].source.endswith("run = exp.submit(pipeline)")
    assert refusal.startswith("PipelineValidationError: the pipeline is invalid (") and re.search(
        r'steps "prepare step" and "train step" each need 1 GPU .* on compute target "gpu-cluster"', refusal
    ), refusal
    assert {error for _, error in later} == {
        f"NameError: name '{name}' is not defined" for name in ("run", "input_dataset")
    }
    fashion = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    assert repr([f"/{name}" for name in fashion]).replace(", ", ",\n ") in shown(notebook)
    assert "keras-mnist-fashion" not in runs and "gpu-cluster" not in Workspace(samples.root).compute_targets
