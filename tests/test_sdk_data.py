"""Data with the Azure ML SDK v1's signatures and semantics (issue 14, item 6 and the data parts of
item 8), each API used as the official samples use it, through real pipeline runs where it
concerns steps."""

from __future__ import annotations

import json
import os

import pytest

from localpipe import (
    DataPath,
    DataPathComputeBinding,
    DataReference,
    Dataset,
    DatasetConsumptionConfig,
    Datastore,
    OutputFileDatasetConfig,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    TabularDataset,
)
from localpipe.errors import DatasetTimestampMissingError, NotFoundError, UsageError, UserErrorException
from localpipe.plan.graph import Graph
from localpipe.state.store import ObjectStore

# A step that records its argv and what Run.get_context().input_datasets gives, into its output "out".
SEE = """
import json, os, sys
from localpipe import Run
inputs = {}
for name, value in Run.get_context().input_datasets.items():
    kind = type(value).__name__
    if kind == "TabularDataset":
        frame = value.to_pandas_dataframe()
        inputs[name] = {"kind": kind, "columns": list(frame.columns), "rows": len(frame)}
    elif kind == "FileDataset":
        inputs[name] = {"kind": kind, "to_path": value.to_path()}
    else:
        inputs[name] = {"kind": kind, "path": value}
out = sys.argv[sys.argv.index("--out") + 1]
json.dump({"argv": sys.argv[1:], "inputs": inputs}, open(os.path.join(out, "seen.json"), "w"))
"""


def seen(ws, steps, step="see") -> dict:
    store = ObjectStore(ws.state_dir / "objects")
    return json.loads((store.path(steps[step]["outputs"]["out"]) / "seen.json").read_text())


def see_step(ws, project, inputs=(), arguments=(), name="see"):
    project("src/see/see.py", SEE)
    out = PipelineData("out")
    return PythonScriptStep(
        name=name,
        script_name="see.py",
        source_directory=str(ws.root / "src/see"),
        arguments=[*arguments, "--out", out],
        inputs=list(inputs),
        outputs=[out],
    )


# -- DataPath, DataReference and data PipelineParameters (item 1) ----------------------------------


def test_a_datapath_pipeline_parameter_chosen_at_submit_time_keys_the_step_by_content(ws, project, run_pipeline):
    """The showcasing-datapath-and-pipelineparameter sample: the default DataPath, then another one
    given in pipeline_parameters; a path holding the same bytes is reused."""
    for folder in ("sample_datapath1", "sample_datapath2", "sample_datapath3"):
        text = "two\n" if folder == "sample_datapath2" else "one\n"
        project(f"local/{folder}/data.txt", text)
    def_blob_store = ws.get_default_datastore()
    for folder in ("sample_datapath1", "sample_datapath2", "sample_datapath3"):
        def_blob_store.upload_files([str(ws.root / f"local/{folder}/data.txt")], target_path=folder, overwrite=True)

    data_path = DataPath(datastore=def_blob_store, path_on_datastore="sample_datapath1")
    datapath1_pipeline_param = PipelineParameter(name="input_datapath", default_value=data_path)
    datapath_input = (datapath1_pipeline_param, DataPathComputeBinding(mode="mount"))
    string_pipeline_param = PipelineParameter(name="input_string", default_value="sample_string1")
    step = see_step(
        ws, project, inputs=[datapath_input], arguments=["--arg1", string_pipeline_param, "--arg2", datapath_input]
    )
    pipeline = Pipeline(workspace=ws, steps=[step])

    _, status, steps = run_pipeline(pipeline)
    assert status.value == "Completed", steps
    first = seen(ws, steps)
    mounted = first["argv"][3]
    assert mounted == str(def_blob_store.folder / "sample_datapath1")
    assert first["inputs"]["input_datapath"] == {"kind": "str", "path": mounted}

    other = DataPath(datastore=def_blob_store, path_on_datastore="sample_datapath2")
    _, status, steps = run_pipeline(pipeline, parameters={"input_datapath": other, "input_string": "sample_string1"})
    assert steps["see"]["reason"] == 'runs: input "input_datapath" changed'
    assert seen(ws, steps)["argv"][3] == str(def_blob_store.folder / "sample_datapath2")

    same_bytes = DataPath(datastore=def_blob_store, path_on_datastore="sample_datapath3")
    _, status, steps = run_pipeline(pipeline, parameters={"input_datapath": same_bytes})
    assert steps["see"]["status"] == "Reused", steps["see"]["reason"]
    assert steps["see"]["reason"].startswith("reused from run 1")


def test_a_dataset_pipeline_parameter_is_consumed_as_the_sample_does(ws, project, run_pipeline):
    """The showcasing-dataset-and-pipelineparameter sample: a file dataset mounted, a tabular one given
    directly (the step reads a TabularDataset), both replaced through pipeline_parameters."""
    project("data/titanic.csv", "name,age\nA,1\nB,2\n")
    project("data/iris.csv", "x,y,z\n1,2,3\n")
    file_dataset = Dataset.File.from_files(str(ws.root / "data/titanic.csv"))
    file_pipeline_param = PipelineParameter(name="file_ds_param", default_value=file_dataset)
    file_ds_consumption = DatasetConsumptionConfig("file_dataset", file_pipeline_param).as_mount()
    tabular_dataset = Dataset.Tabular.from_delimited_files(str(ws.root / "data/titanic.csv"))
    tabular_pipeline_param = PipelineParameter(name="tabular_ds_param", default_value=tabular_dataset)
    tabular_ds_consumption = DatasetConsumptionConfig("tabular_dataset", tabular_pipeline_param)
    step = see_step(
        ws,
        project,
        inputs=[file_ds_consumption, tabular_ds_consumption],
        arguments=["--param1", file_ds_consumption, "--param2", tabular_ds_consumption],
    )
    pipeline = Pipeline(workspace=ws, steps=[step])

    _, status, steps = run_pipeline(pipeline)
    assert status.value == "Completed", steps
    got = seen(ws, steps)["inputs"]
    assert got["file_dataset"] == {"kind": "str", "path": str(ws.root / "data/titanic.csv")}
    assert got["tabular_dataset"] == {"kind": "TabularDataset", "columns": ["name", "age"], "rows": 2}

    iris_file_ds = Dataset.File.from_files(str(ws.root / "data/iris.csv"))
    iris_tabular_ds = Dataset.Tabular.from_delimited_files(str(ws.root / "data/iris.csv"))
    _, status, steps = run_pipeline(
        pipeline, parameters={"file_ds_param": iris_file_ds, "tabular_ds_param": iris_tabular_ds}
    )
    got = seen(ws, steps)["inputs"]
    assert got["file_dataset"]["path"] == str(ws.root / "data/iris.csv")
    assert got["tabular_dataset"]["columns"] == ["x", "y", "z"]
    with pytest.raises(UserErrorException, match="does not support mount"):
        DatasetConsumptionConfig("t", tabular_dataset).as_mount()


def test_a_submission_saves_the_datasets_it_uses_and_gives_them_ids_as_azure(ws, project, run_pipeline):
    """The sample's REST call names its datasets by `dataset.id`: a dataset a submission uses (a
    parameter's default or value, an input) is saved, its definition under an id that
    Dataset.get_by_id finds from any handle of the workspace; the same definition has the same id."""
    from localpipe import Experiment, PipelineRun, Workspace

    project("data/titanic.csv", "name,age\nA,1\nB,2\n")
    project("data/iris.csv", "x,y,z\n1,2,3\n")
    titanic_file = Dataset.File.from_files(str(ws.root / "data/titanic.csv"))
    titanic_table = Dataset.Tabular.from_delimited_files(str(ws.root / "data/titanic.csv"), separator=",")
    file_param = PipelineParameter(name="file_ds_param", default_value=titanic_file)
    table_param = PipelineParameter(name="tabular_ds_param", default_value=titanic_table)
    step = see_step(ws, project, inputs=[DatasetConsumptionConfig("file_dataset", file_param).as_mount(),
                                         DatasetConsumptionConfig("tabular_dataset", table_param)])  # fmt: skip
    pipeline = Pipeline(workspace=ws, steps=[step])
    iris_file = Dataset.File.from_files(str(ws.root / "data/iris.csv"))
    iris_table = Dataset.Tabular.from_delimited_files(str(ws.root / "data/iris.csv"))
    assert [titanic_file.id, titanic_table.id, iris_file.id, iris_table.id] == [None] * 4

    run_pipeline(pipeline)
    assert len(titanic_file.id) == len(titanic_table.id) == 36 and titanic_file.id != titanic_table.id
    assert iris_file.id is None and iris_table.id is None  # not used yet
    run_id, _, _ = run_pipeline(pipeline, parameters={"file_ds_param": iris_file, "tabular_ds_param": iris_table})
    ids = {titanic_file.id, titanic_table.id, iris_file.id, iris_table.id}
    assert len(ids) == 4 and None not in ids
    consumed = PipelineRun(Experiment(ws, "test"), run_id).find_step_run("see")[0].get_details()["inputDatasets"]
    assert [(d["dataset"].id, d["consumptionDetails"]) for d in consumed] == [
        (iris_file.id, {"type": "RunInput", "inputName": "file_dataset", "mechanism": "Mount"}),
        (iris_table.id, {"type": "RunInput", "inputName": "tabular_dataset", "mechanism": "Direct"}),
    ]
    assert consumed[0]["dataset"].to_path() == ["/iris.csv"]

    other = Workspace(ws.root)  # another handle: the ids are in history.db
    table = Dataset.get_by_id(other, iris_table.id)
    assert isinstance(table, TabularDataset) and table.id == iris_table.id
    assert table.to_pandas_dataframe().values.tolist() == [[1, 2, 3]]
    found = Dataset.get_by_id(other, titanic_file.id)
    assert not isinstance(found, TabularDataset) and found.paths == titanic_file.paths and found.id == titanic_file.id
    with pytest.raises(UserErrorException, match="must be registered"):
        found.update(description="saved, not registered")

    again = Dataset.File.from_files(str(ws.root / "data/iris.csv"))  # the same definition: the same id
    run_pipeline(pipeline, parameters={"file_ds_param": again, "tabular_ds_param": iris_table.take(1)})
    assert again.id == iris_file.id and iris_table.take(1).id is None  # a derived dataset is another definition
    registered = Dataset.File.from_files(str(ws.root / "data/titanic.csv")).register(ws, "titanic")
    run_id, _, _ = run_pipeline(pipeline, parameters={"file_ds_param": registered})
    assert registered.id == Dataset.get_by_name(ws, "titanic").id != titanic_file.id  # its registered id stays
    consumed = PipelineRun(Experiment(ws, "test"), run_id).find_step_run("see")[0].get_details()["inputDatasets"]
    assert consumed[0]["dataset"].name == "titanic" and consumed[0]["dataset"].id == registered.id

    project("data/other.csv", "x\n4\n")
    default = Dataset.File.from_files(str(ws.root / "data/other.csv"))
    consumed = DatasetConsumptionConfig("file_dataset", PipelineParameter("f", default_value=default))
    published = Pipeline(ws, [see_step(ws, project, inputs=[consumed], name="see2")]).publish("saved")
    assert default.id is not None  # publishing saves the datasets of its declaration
    chosen = Dataset.File.from_files(str(ws.root / "data/other.csv"), validate=False)
    run = published.submit(ws, "published", pipeline_parameters={"f": chosen})
    assert chosen.id == default.id  # a submission of a published pipeline saves the values it is given
    assert run.wait_for_completion(show_output=False) == "Completed"


def test_data_references_of_the_data_dependency_sample_mount_and_download(ws, project, run_pipeline):
    project("local/Titanic.csv", "a\n1\n")
    def_blob_store = Datastore(ws, "workspaceblobstore")
    reference = def_blob_store.upload_files([str(ws.root / "local/Titanic.csv")], target_path="titanic", overwrite=True)
    assert isinstance(reference, DataReference) and reference.path_on_datastore == "titanic"
    blob_input_data = DataReference(
        datastore=def_blob_store, data_reference_name="test_data", path_on_datastore="titanic/Titanic.csv"
    )
    copied = def_blob_store.path("titanic").as_download()
    step = see_step(ws, project, inputs=[blob_input_data], arguments=["--input", blob_input_data, "--c", copied])
    _, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status.value == "Completed", steps
    got = seen(ws, steps)
    assert got["argv"][1] == str(def_blob_store.folder / "titanic/Titanic.csv")
    assert got["argv"][3].startswith(str(ws.state_dir / "runs")) and os.path.isdir(got["argv"][3])
    assert str(blob_input_data) == "$AZUREML_DATAREFERENCE_test_data"
    assert copied.data_reference_name == def_blob_store.path("titanic").data_reference_name  # stable: same key


# -- datastores (item 2) -----------------------------------------------------------------------------


def test_datastore_upload_files_download_and_the_default_datastore(ws, project, tmp_path):
    project("data/green/unprepared.parquet", "g")
    project("data/yellow/a/b.csv", "y")
    default_store = ws.get_default_datastore()
    assert Datastore(ws) == default_store == Datastore(ws, "workspaceblobstore") == Datastore.get_default(ws)
    default_store.upload_files(
        [str(ws.root / "data/green/unprepared.parquet")], target_path="green", overwrite=True, show_progress=True
    )
    default_store.upload_files(
        [str(ws.root / "data/yellow/a/b.csv"), str(ws.root / "data/green/unprepared.parquet")],
        relative_root=str(ws.root / "data"),
        target_path="both",
    )
    assert (default_store.folder / "green/unprepared.parquet").read_text() == "g"
    assert (default_store.folder / "both/yellow/a/b.csv").read_text() == "y"
    with pytest.raises(UserErrorException, match="relative_root"):
        default_store.upload_files(
            [str(ws.root / "data/green/unprepared.parquet")], relative_root=str(ws.root / "data/yellow")
        )
    assert default_store.download(str(tmp_path / "down"), prefix="both", show_progress=False) == 2
    assert (tmp_path / "down/both/yellow/a/b.csv").read_text() == "y"
    assert default_store.download(str(tmp_path / "down"), prefix="both", show_progress=False) == 0  # kept


def test_cloud_registrations_refuse_in_one_line_and_write_nothing(ws):
    with pytest.raises(UserErrorException, match=r"Datastore.register_local\(workspace, name, path\)"):
        Datastore.register_azure_blob_container(
            workspace=ws, datastore_name="oj", container_name="c", account_name="a", account_key="k"
        )
    with pytest.raises(UserErrorException, match="register_local"):
        Datastore.register_azure_data_lake_gen2(ws, "lake", filesystem="fs", account_name="a")
    with pytest.raises(TypeError):
        Datastore.register_azure_file_share(ws, "share", file_share_name="s", acount_name="typo")
    assert sorted(ws.datastores) == ["workspaceblobstore", "workspacefilestore"]


# -- FileDataset (item 3) ----------------------------------------------------------------------------


def test_file_dataset_paths_subsets_download_and_mount(ws, project, tmp_path):
    for name in ("a", "b", "c", "d"):
        project(f"imgs/{name}.csv", name)
    project("imgs/sub/e.csv", "e")
    project("imgs/skip.txt", "no")
    ds = ws.get_default_datastore()
    ds.upload(str(ws.root / "imgs"), target_path="imgs")
    dataset = Dataset.File.from_files((ds, "imgs/*.csv"))
    assert dataset.to_path() == ["/a.csv", "/b.csv", "/c.csv", "/d.csv"]
    assert Dataset.File.from_files(ds.path("imgs")).to_path()[-1] == "/sub/e.csv"
    assert dataset.take(2).to_path() == ["/a.csv", "/b.csv"] and dataset.skip(3).to_path() == ["/d.csv"]
    first, rest = dataset.random_split(percentage=0.5, seed=223)
    assert sorted(first.to_path() + rest.to_path()) == dataset.to_path()
    assert first.to_path() == dataset.random_split(percentage=0.5, seed=223)[0].to_path()
    assert set(dataset.take_sample(0.5, seed=1).to_path()) <= set(dataset.to_path())

    files = dataset.take(2).download(target_path=str(tmp_path / "dl"), overwrite=False)
    assert files == [str(tmp_path / "dl/a.csv"), str(tmp_path / "dl/b.csv")]
    with pytest.raises(UserErrorException, match="already exists"):
        dataset.take(1).download(target_path=str(tmp_path / "dl"))
    with dataset.mount() as mount_context:
        assert sorted(os.listdir(mount_context.mount_point)) == ["a.csv", "b.csv", "c.csv", "d.csv"]
        assert open(os.path.join(mount_context.mount_point, "c.csv")).read() == "c"
        with pytest.raises(PermissionError):
            if os.geteuid() == 0:
                raise PermissionError("root writes anywhere")
            open(os.path.join(mount_context.mount_point, "new.csv"), "w")
    assert not os.path.exists(mount_context.mount_point)
    with pytest.raises(UserErrorException, match="Cannot load any data"):
        Dataset.File.from_files((ds, "nothing/*.csv"))
    with pytest.raises(TypeError):
        dataset.mount(mount_opts=["ro"])


def test_register_refuses_new_content_under_an_existing_name_unless_asked(ws, project):
    project("data/x.csv", "1")
    ds = Dataset.File.from_files(str(ws.root / "data"))
    assert ds.register(ws, "x").version == 1 and ds.register(ws, "x").version == 1
    project("data/x.csv", "2")
    with pytest.raises(Exception, match="create_new_version=True"):
        Dataset.File.from_files(str(ws.root / "data")).register(workspace=ws, name="x")
    assert Dataset.File.from_files(str(ws.root / "data")).register(ws, "x", create_new_version=True).version == 2
    picked = Dataset.File.from_files(str(ws.root / "data/*.csv")).register(ws, "picked")
    assert picked.to_path() == ["/x.csv"]


def test_a_folders_files_are_every_file_below_it_in_order_links_to_files_included(ws, project, monkeypatch):
    """A link to a file is a file of the dataset; a linked folder is not entered (it could hold
    the folder itself), a dangling link is no file; hidden files and deep folders count."""
    for name in ("data/b.csv", "data/.hidden", "data/deep/er/a.csv", "elsewhere/x.csv", "elsewhere/y.csv"):
        project(name, name)
    (ws.root / "data/link.csv").symlink_to(ws.root / "elsewhere/x.csv")
    (ws.root / "data/folder-link").symlink_to(ws.root / "elsewhere", target_is_directory=True)
    (ws.root / "data/dangling").symlink_to(ws.root / "nowhere")
    (ws.root / "data/empty").mkdir()
    monkeypatch.chdir(ws.root)
    dataset = Dataset.File.from_files("./data/")
    assert dataset.to_path() == ["/.hidden", "/b.csv", "/deep/er/a.csv", "/link.csv"]
    assert dataset.files() == [str(ws.root / "data" / n) for n in (".hidden", "b.csv", "deep/er/a.csv", "link.csv")]


def test_a_registered_folder_holds_the_files_its_dataset_names_whatever_links_and_fifos_it_has(ws, project):
    """Registering copied the folder following every link: a dangling link, a fifo or a link to a
    folder above it was a shutil.Error listing every path, and a linked folder's files were copied
    though files() leaves them out. The copy holds what files() names."""
    for name in ("data/b.csv", "data/deep/a.csv", "elsewhere/x.csv"):
        project(name, name)
    (ws.root / "data/link.csv").symlink_to(ws.root / "elsewhere/x.csv")
    (ws.root / "data/folder-link").symlink_to(ws.root / "elsewhere", target_is_directory=True)
    (ws.root / "data/deep/up").symlink_to(ws.root / "data", target_is_directory=True)
    (ws.root / "data/dangling").symlink_to(ws.root / "nowhere")
    os.mkfifo(ws.root / "data/fifo")
    dataset = Dataset.File.from_files(str(ws.root / "data"))
    registered = dataset.register(ws, "links")
    assert registered.to_path() == dataset.to_path() == ["/b.csv", "/deep/a.csv", "/link.csv"]
    assert open(registered.files()[2]).read() == "elsewhere/x.csv"


def test_input_datasets_give_a_file_dataset_in_direct_mode_and_paths_otherwise(ws, project, run_pipeline):
    project("data/raw/one.csv", "1")
    project("data/raw/deep/two.csv", "2")
    raw = Dataset.File.from_files(str(ws.root / "data/raw"))
    picked = Dataset.File.from_files(str(ws.root / "data/raw/**/*.csv"))
    step = see_step(
        ws,
        project,
        inputs=[raw.as_named_input("direct"), raw.as_named_input("mounted").as_mount(), picked.as_named_input("pick")],
    )
    _, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status.value == "Completed", steps
    got = seen(ws, steps)["inputs"]
    assert got["direct"] == {"kind": "FileDataset", "to_path": ["/deep/two.csv", "/one.csv"]}
    assert got["mounted"] == {"kind": "str", "path": str(ws.root / "data/raw")}
    assert got["pick"]["to_path"] == ["/deep/two.csv", "/one.csv"]


# -- TabularDataset (item 4) -------------------------------------------------------------------------


def test_tabular_datasets_column_and_row_operations(ws, project):
    rows = "".join(f"{i},{i * 2},x{i}\n" for i in range(20))
    project("t/part1.csv", "a,b,c\n" + rows)
    dataset = Dataset.Tabular.from_delimited_files(
        path=str(ws.root / "t/*.csv"),
        set_column_types={"a": int, "c": str},
    )
    assert list(dataset.drop_columns("c").to_pandas_dataframe().columns) == ["a", "b"]
    assert list(dataset.keep_columns(["a"]).to_pandas_dataframe().columns) == ["a"]
    assert dataset.take(5).to_pandas_dataframe()["a"].tolist() == [0, 1, 2, 3, 4]
    assert dataset.skip(18).to_pandas_dataframe()["a"].tolist() == [18, 19]
    train, test = dataset.random_split(percentage=0.8, seed=223)
    together = sorted(train.to_pandas_dataframe()["a"].tolist() + test.to_pandas_dataframe()["a"].tolist())
    assert together == list(range(20)) and 0 < len(test.to_pandas_dataframe()) < 20
    assert len(dataset.take_sample(0.0).to_pandas_dataframe()) == 0
    csv = dataset.take(3).to_csv_files(separator=";")
    assert open(csv.files()[0]).read().splitlines()[0] == "a;b;c"
    with pytest.raises(UserErrorException, match="'null' or 'fail'"):
        dataset.to_pandas_dataframe(on_error="ignore")
    registered = dataset.keep_columns(["a", "b"]).take(2).register(ws, "small")
    assert Dataset.get_by_name(ws, "small").to_pandas_dataframe().values.tolist() == [[0, 0], [1, 2]]
    assert registered.version == 1


def test_an_empty_file_among_delimited_files_has_no_rows_and_an_unreadable_one_is_named(ws, project):
    # A folder of parts (a Spark job's, an OutputFileDatasetConfig's) often holds an empty one: it
    # was pandas' EmptyDataError, and text in another encoding was a UnicodeDecodeError from pandas.
    project("parts/part-00000.csv", "")
    project("parts/part-00001.csv", "a,b\n1,2\n")
    parts = Dataset.Tabular.from_delimited_files(str(ws.root / "parts"))
    assert parts.to_pandas_dataframe().to_dict("records") == [{"a": 1, "b": 2}]
    only_empty = Dataset.Tabular.from_delimited_files(str(ws.root / "parts/part-00000.csv"))
    assert only_empty.to_pandas_dataframe().empty
    (ws.root / "latin.csv").write_bytes("name,v\ncaf\u00e9,1\n".encode("latin-1"))
    with pytest.raises(UserErrorException, match=r"latin\.csv.* is not utf8 text.*encoding="):
        Dataset.Tabular.from_delimited_files(str(ws.root / "latin.csv")).to_pandas_dataframe()
    latin = Dataset.Tabular.from_delimited_files(str(ws.root / "latin.csv"), encoding="latin1")
    assert latin.to_pandas_dataframe().to_dict("records") == [{"name": "caf\u00e9", "v": 1}]
    project("ragged.csv", "a,b\n1,2\n3,4,5\n")
    with pytest.raises(UserErrorException, match=r"ragged\.csv.*could not be read.*Expected 2 fields in line 3"):
        Dataset.Tabular.from_delimited_files(str(ws.root / "ragged.csv")).to_pandas_dataframe()


def test_parquet_json_lines_and_register_pandas_dataframe(ws, project):
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pandas.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    ds = ws.get_default_datastore()
    train_data = Dataset.Tabular.register_pandas_dataframe(
        frame, target=(ds, "train"), name="train", show_progress=False
    )
    assert train_data.name == "train" and train_data.to_pandas_dataframe().equals(frame)
    parquet = Dataset.Tabular.from_parquet_files(path=(ds, "train/**/*.parquet"))
    assert parquet.to_pandas_dataframe()["x"].tolist() == [1, 2, 3]
    assert parquet.take(1).to_parquet_files().files()[0].endswith(".parquet")
    project("j/a.jsonl", '{"k": 1}\n{"k": 2}\n')
    assert Dataset.Tabular.from_json_lines_files(str(ws.root / "j/a.jsonl")).to_pandas_dataframe()["k"].sum() == 3


# -- OutputFileDatasetConfig and PipelineData (items 4 and 8) ------------------------------------------


def test_output_file_dataset_config_as_upload_and_as_mount_stay_outputs(ws, project, run_pipeline):
    pytest.importorskip("pyarrow")
    project(
        "src/p/p.py",
        """
        import os, sys
        import pandas
        pandas.DataFrame({"x": [1, 2]}).to_parquet(os.path.join(sys.argv[1], "part.parquet"))
        open(os.path.join(sys.argv[2], "rows.tsv"), "w").write("k\\tv\\n1\\t2\\n")
        """,
    )
    store = ws.get_default_datastore()
    uploaded = OutputFileDatasetConfig(name="uploaded", destination=(store, "up/{run-id}")).as_upload(overwrite=True)
    mounted = OutputFileDatasetConfig(name="mounted").as_mount()
    mounted.register_on_complete(name="tsv_rows", description="rows", tags={"k": "v"})
    produce = PythonScriptStep(
        "p.py", name="produce", source_directory=str(ws.root / "src/p"), arguments=[uploaded, mounted]
    )
    consume = see_step(
        ws,
        project,
        inputs=[
            uploaded.read_parquet_files(path_glob="*.parquet").as_input("pq"),
            mounted.read_delimited_files(separator="\t", set_column_types={"v": float}).as_input("tsv"),
        ],
    )
    run_id, status, steps = run_pipeline(Pipeline(ws, [consume, produce]))
    assert status.value == "Completed", steps
    got = seen(ws, steps)["inputs"]
    assert got["pq"] == {"kind": "TabularDataset", "columns": ["x"], "rows": 2}
    assert got["tsv"] == {"kind": "TabularDataset", "columns": ["k", "v"], "rows": 1}
    assert (store.folder / f"up/{run_id}/part.parquet").exists()
    assert Dataset.get_by_name(ws, "tsv_rows").version == 1


def test_pipeline_data_as_dataset_parsed_by_its_consumers_as_the_nyc_taxi_sample(ws, project, run_pipeline, history):
    """The nyc-taxi sample's form: each step's output ``PipelineData(...).as_dataset()``, read by the next
    through ``parse_parquet_files()`` as a TabularDataset; pipeline_output_name is in the run's graph."""
    pytest.importorskip("pyarrow")
    project(
        "src/clean/cleanse.py",
        """
        import argparse, os
        import pandas
        from azureml.core import Run
        raw = Run.get_context().input_datasets["raw_data"].to_pandas_dataframe()
        parser = argparse.ArgumentParser("cleanse")
        parser.add_argument("--output_cleanse", type=str)
        args = parser.parse_args()
        os.makedirs(args.output_cleanse, exist_ok=True)
        raw.dropna(how="all").to_parquet(args.output_cleanse + "/processed.parquet")
        """,
    )
    project("data/green.csv", "cost,distance\n1,2\n3,4\n")
    green_taxi_data = Dataset.Tabular.from_delimited_files(str(ws.root / "data/green.csv")).register(ws, "green")
    default_store = ws.get_default_datastore()
    cleansed = PipelineData(
        "cleansed_green_data", datastore=default_store, is_directory=True, pipeline_output_name="cleansed"
    ).as_dataset()
    cleansing = PythonScriptStep(
        name="Cleanse Green Taxi Data",
        script_name="cleanse.py",
        arguments=["--output_cleanse", cleansed],
        inputs=[green_taxi_data.as_named_input("raw_data")],
        outputs=[cleansed],
        source_directory=str(ws.root / "src/clean"),
        allow_reuse=True,
    )
    merge = see_step(ws, project, inputs=[cleansed.parse_parquet_files()])
    run_id, status, steps = run_pipeline(Pipeline(ws, [merge, cleansing]))
    assert status.value == "Completed", steps
    assert seen(ws, steps)["inputs"]["cleansed_green_data"] == {
        "kind": "TabularDataset",
        "columns": ["cost", "distance"],
        "rows": 2,
    }
    graph = Graph.from_dict(history.runs.for_scheduler(run_id).graph)
    assert graph.steps["Cleanse Green Taxi Data"].pipeline_outputs == {"cleansed": "cleansed_green_data"}
    from localpipe import Experiment
    from localpipe.client.runs import PipelineRun

    run = PipelineRun(Experiment(ws, "test"), run_id)
    reference = run.get_pipeline_output("cleansed")  # the SDK's PortDataReference
    assert reference.path_on_datastore == "/".join(reference.path.parts[-2:])
    assert reference.download(str(ws.root / "copy")) == 1  # the number of files, as the SDK answers
    assert (ws.root / "copy" / reference.path_on_datastore / "processed.parquet").is_file()
    with pytest.raises(NotFoundError, match='no pipeline output "final" \\(its pipeline outputs: cleansed\\)'):
        run.get_pipeline_output("final")
    step = run.find_step_run("Cleanse Green Taxi Data")[0]
    for name, output in step.get_outputs().items():  # the data-dependency sample's loop
        port = output.get_port_data_reference()
        assert (name, port.datastore_name, port.data_reference_name) == ("cleansed_green_data", "objects", name)


def test_pipeline_data_takes_the_sdks_parameters(ws):
    data = PipelineData(
        "processed",
        datastore=ws.get_default_datastore(),
        output_name="processed",
        output_mode="upload",
        output_overwrite=True,
        data_type="AnyDirectory",
        is_directory=True,
        pipeline_output_name="final",
    )
    assert (data.output_mode, data.pipeline_output_name, data.is_directory) == ("upload", "final", True)
    with pytest.raises(UserErrorException, match="output_mode"):
        PipelineData("x", output_mode="link")
    with pytest.raises(TypeError):
        PipelineData("x", pipline_output_name="typo")


def test_a_data_path_missing_from_its_datastore_mounts_empty_and_cannot_be_downloaded(ws, project, run_pipeline):
    """The showcasing-datapath sample mounts "sample_datapath1", which nothing wrote: Azure mounts an
    absent path as an empty folder, and so does localpipe, with a warning; a download of it fails
    validation."""
    blob = ws.get_default_datastore()
    param = PipelineParameter(name="input_datapath", default_value=DataPath(blob, "sample_datapath1"))
    step = see_step(ws, project, inputs=[(param, DataPathComputeBinding())], arguments=["--arg2", param])
    with pytest.warns(UserWarning, match='"sample_datapath1" does not exist in datastore "workspaceblobstore".*empty'):
        _, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status.value == "Completed", steps
    mounted = seen(ws, steps)["inputs"]["input_datapath"]["path"]
    assert os.path.isdir(mounted) and os.listdir(mounted) == []
    download = see_step(ws, project, inputs=[(param, DataPathComputeBinding(mode="download"))], name="dl")
    problems = Pipeline(ws, [download]).validate()
    assert any('"sample_datapath1" does not exist in datastore "workspaceblobstore"' in p for p in problems), problems


# -- files named by an http(s) URL, as the samples read their public data ---------------------------


@pytest.fixture
def web(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``files`` (path -> bytes) with ETags, answering 304 to
    a matching If-None-Match; ``requests`` lists (path, status) of what it answered. As an HTTP proxy
    (asked for absolute URLs) it serves the same files, and answers the Blob service's List Blobs
    (``/container?restype=container&comp=list&prefix=...``) from them, two names a page."""
    import hashlib
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, unquote, urlsplit

    files: dict[str, bytes] = {}
    requests: list[tuple[str, int]] = []

    def listing(container: str, query: dict) -> bytes:
        prefix, marker = query.get("prefix", [""])[0], int(query.get("marker", ["0"])[0])
        names = sorted(p[len(container) + 1 :] for p in files if p.startswith(container + "/"))
        names = [name for name in names if name.startswith(prefix)]
        page, rest = names[marker : marker + 2], names[marker + 2 :]
        blobs = "".join(f"<Blob><Name>{name}</Name><Properties/></Blob>" for name in page)
        next_marker = str(marker + 2) if rest else ""
        return (
            f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="{container}">'
            f"<Prefix>{prefix}</Prefix><Blobs>{blobs}</Blobs><NextMarker>{next_marker}</NextMarker>"
            "</EnumerationResults>"
        ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            address = urlsplit(self.path)
            query = parse_qs(address.query)
            if query.get("comp") == ["list"]:
                body = listing(address.path, query)
            else:
                body = files.get(unquote(address.path) if address.scheme else self.path)
            if body is None:
                status, body, etag = 404, b"", None
            else:
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                status = 304 if self.headers.get("If-None-Match") == etag else 200
            requests.append((self.path, status))
            self.send_response(status)
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body) if status == 200 else 0))
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.files, server.requests = files, requests
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def test_a_dataset_from_a_url_is_fetched_once_revalidated_and_keys_the_step_by_content(ws, project, run_pipeline, web):
    """The publish-and-run sample's ``Dataset.File.from_files("https://.../Titanic.csv")``: fetched into
    the machine's cache, asked again with its ETag on each use (304: the copy is kept), a change of
    the served file is a new input for the step; without the server the copy fetched before is used."""
    web.files["/demo/Titanic.csv"] = b"name,age\nA,1\n"
    url = web.url + "/demo/Titanic.csv"

    def submit():
        titanic = Dataset.File.from_files(url)
        return run_pipeline(Pipeline(ws, [see_step(ws, project, inputs=[titanic.as_named_input("titanic")])]))

    _, status, steps = submit()
    assert status.value == "Completed", steps
    (path,) = seen(ws, steps)["inputs"]["titanic"]["to_path"]
    assert path == "/Titanic.csv"
    _, _, steps = submit()
    assert steps["see"]["status"] == "Reused"
    assert web.requests == [("/demo/Titanic.csv", 200), ("/demo/Titanic.csv", 304)]
    web.files["/demo/Titanic.csv"] = b"name,age\nA,1\nB,2\n"
    _, _, steps = submit()
    assert steps["see"]["status"] == "Completed" and web.requests[-1] == ("/demo/Titanic.csv", 200)
    frame = Dataset.Tabular.from_delimited_files(url).to_pandas_dataframe()
    assert list(frame["name"]) == ["A", "B"]

    web.shutdown()
    web.server_close()
    with pytest.warns(UserWarning, match="cannot be reached.*using the copy fetched before"):
        offline = Dataset.File.from_files(url)
    assert open(offline.paths[0]).read() == "name,age\nA,1\nB,2\n"
    with pytest.raises(UsageError, match=r'cannot download "http://127.0.0.1:\d+/other.csv" \(.*\): check the address'):
        Dataset.File.from_files(web.url + "/other.csv")


def test_a_url_that_answers_an_error_is_one_line(web):
    with pytest.raises(UsageError, match=r'Dataset.File.from_files: ".*/missing.csv" answered HTTP 404'):
        Dataset.File.from_files(web.url + "/missing.csv")


@pytest.fixture
def blob_proxy(web):
    """``web`` as the HTTP proxy of this process, so that http://{account}.blob.core.windows.net/...
    reaches it (the tests register containers with ``protocol="http"``; https would need a tunnel)."""
    import urllib.request

    urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({"http": web.url})))
    yield web
    urllib.request.install_opener(None)


IRIS_URL = "http://pipelinedata.blob.core.windows.net/sampledata"


def test_a_public_blob_container_is_a_read_only_datastore_whose_files_are_fetched_on_use(ws, blob_proxy, invoke):
    """The parallel-run iris sample's registration of a public container (no credentials), then its
    files: one named (fetched, revalidated with its ETag), a folder and a glob (listed with List Blobs,
    page by page), the whole container downloaded; writing to it is refused; offline, the copies."""
    web = blob_proxy
    web.files["/sampledata/iris/iris.csv"] = b"sepal_length,species\n5.1,setosa\n"
    web.files["/sampledata/iris/more.csv"] = b"sepal_length,species\n7.0,versicolor\n"
    web.files["/sampledata/iris/old.csv"] = b"sepal_length,species\n1.0,gone\n"
    web.files["/sampledata/readme.txt"] = b"not iris"
    iris_data = Datastore.register_azure_blob_container(
        ws, datastore_name="iris_datastore_data", container_name="sampledata", account_name="pipelinedata",
        protocol="http", overwrite=True,
    )  # fmt: skip
    assert iris_data.url == IRIS_URL == Datastore.get(ws, "iris_datastore_data").url
    assert "iris_datastore_data" in ws.datastores

    one = Dataset.Tabular.from_delimited_files(path=iris_data.path("iris/iris.csv")).to_pandas_dataframe()
    assert list(one["species"]) == ["setosa"]
    Dataset.Tabular.from_delimited_files(path=(iris_data, "iris/iris.csv"))
    assert web.requests[-2:] == [("http://pipelinedata.blob.core.windows.net/sampledata/iris/iris.csv", 200)] + [
        ("http://pipelinedata.blob.core.windows.net/sampledata/iris/iris.csv", 304)
    ]

    del web.files["/sampledata/iris/old.csv"]  # deleted from the container: gone from the folder too
    folder = Dataset.Tabular.from_delimited_files(path=iris_data.path("iris/"), validate=False)
    assert sorted(folder.to_pandas_dataframe()["species"]) == ["setosa", "versicolor"]
    lists = [path for path, _ in web.requests if "comp=list" in path]
    assert lists == [f"{IRIS_URL}?restype=container&comp=list&prefix=iris%2F"]
    globbed = Dataset.File.from_files(path=(iris_data, "iris/m*.csv"))
    assert [os.path.basename(p) for p in globbed.to_path()] == ["more.csv"]
    assert Dataset.File.from_files(path=(iris_data, "iris")).to_path() == ["/iris.csv", "/more.csv"]

    target = ws.root / "copy"
    assert iris_data.download(str(target)) == 3  # three blobs: a second page of the listing
    assert (target / "readme.txt").read_bytes() == b"not iris"

    with pytest.raises(
        UserErrorException, match=r'upload: datastore "iris_datastore_data" is a public blob .*read-only'
    ):
        iris_data.upload(src_dir=str(target))
    with pytest.raises(UserErrorException, match="Dataset.File.upload_directory: .* read-only"):
        Dataset.File.upload_directory(str(target), (iris_data, "up"))
    with pytest.raises(UserErrorException, match=r"Cannot load any data from the specified path \[.*/iris/none.csv'\]"):
        Dataset.File.from_files(path=(iris_data, "iris/none.csv"))

    listed = {row["name"]: row for row in json.loads(invoke("datastores", "--json").output)}
    assert listed["iris_datastore_data"]["url"] == IRIS_URL and listed["iris_datastore_data"]["files"] == 3

    web.shutdown()
    web.server_close()
    with pytest.warns(UserWarning, match="cannot be reached.*using the files fetched before"):
        offline = Dataset.Tabular.from_delimited_files(path=iris_data.path("iris/"))
    assert len(offline.to_pandas_dataframe()) == 2
    with pytest.raises(UsageError, match=r'cannot list "http://pipelinedata.*/sampledata" \(prefix "other/"'):
        Dataset.File.from_files(path=(iris_data, "other/"))


def test_a_url_of_a_public_blob_folder_is_its_files(blob_proxy):
    """The image-classification sample's ``Dataset.File.from_files(["https://azuremldownloads.blob.core.windows.net/demo/mnist-fashion"])``:
    no blob has that name, so the folder is listed (List Blobs) and its files fetched, as on Azure; a
    URL naming neither a blob nor a folder keeps its one-line error; offline, the files fetched before."""
    web = blob_proxy
    url = "http://azuremldownloads.blob.core.windows.net/demo/mnist-fashion"
    for name in ("t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        web.files[f"/demo/mnist-fashion/{name}"] = name.encode()
    web.files["/demo/mnist-fashion-other/x"] = b"not under the folder"
    folder = Dataset.File.from_files([url])
    assert folder.to_path() == ["/t10k-labels-idx1-ubyte", "/train-images-idx3-ubyte", "/train-labels-idx1-ubyte"]
    [local] = folder.paths
    assert open(os.path.join(local, "train-images-idx3-ubyte"), "rb").read() == b"train-images-idx3-ubyte"
    listing = "http://azuremldownloads.blob.core.windows.net/demo?restype=container&comp=list&prefix=mnist-fashion%2F"
    assert [path for path, _ in web.requests if "comp=list" in path] == [listing, listing + "&marker=2"]  # 2 a page
    with pytest.raises(UsageError, match=r'".*/demo/nothing" answered HTTP 404'):
        Dataset.File.from_files("http://azuremldownloads.blob.core.windows.net/demo/nothing")
    web.shutdown()
    web.server_close()
    with pytest.warns(UserWarning, match="cannot be reached.*using the files fetched before"):
        assert Dataset.File.from_files([url]).to_path() == folder.to_path()


def test_a_blob_container_registered_with_credentials_or_over_another_is_refused(ws, tmp_path):
    with pytest.raises(UserErrorException, match="localpipe does not talk to Azure storage with keys or SAS tokens"):
        Datastore.register_azure_blob_container(ws, "private", "data", "acct", account_key="secret")
    with pytest.raises(UserErrorException, match="with keys or SAS tokens"):
        Datastore.register_azure_blob_container(ws, "private", "data", "acct", sas_token="?sv=1")
    assert "private" not in ws.datastores
    first = Datastore.register_azure_blob_container(ws, "public", "data", "acct", endpoint="core.chinacloudapi.cn")
    assert first.url == "https://acct.blob.core.chinacloudapi.cn/data"
    assert (
        Datastore.register_azure_blob_container(ws, "public", "data", "acct", endpoint="core.chinacloudapi.cn") == first
    )
    with pytest.raises(UserErrorException, match=r'datastore "public" is already registered .*overwrite=True'):
        Datastore.register_azure_blob_container(ws, "public", "other", "acct")
    moved = Datastore.register_azure_blob_container(ws, "public", "other", "acct", overwrite=True)
    assert Datastore.get(ws, "public").url == moved.url == "https://acct.blob.core.windows.net/other"
    moved.unregister()
    assert "public" not in ws.datastores


def test_an_output_written_to_a_public_blob_container_is_refused_when_the_pipeline_is_checked(
    ws, project, run_pipeline
):
    from localpipe import OutputFileDatasetConfig

    public = Datastore.register_azure_blob_container(ws, "public", "data", "acct")
    out = OutputFileDatasetConfig(name="scored", destination=(public, "scores"))
    with pytest.raises(UsageError, match='output "scored" goes to datastore "public", a public blob container'):
        run_pipeline(Pipeline(ws, [see_step(ws, project, arguments=["--scored", out])]))


# -- registered datasets' metadata, filters, partitions and time series (issue 14, item 6) -----------


def test_a_registered_versions_id_description_and_tags_change_its_record(ws, project):
    """The samples' registration (register with description and tags), then the SDK's metadata members;
    the changes are in history.db: a new handle (get_by_id, get_by_name, get_all) sees them."""
    project("data/a.csv", "x,y\n1,2\n")
    default_ds = ws.get_default_datastore()
    default_ds.upload(src_dir=str(ws.root / "data"), target_path="diabetes-data")
    tab_data_set = Dataset.Tabular.from_delimited_files(path=(default_ds, "diabetes-data/*.csv"))
    assert tab_data_set.id is None and tab_data_set.tags is None and tab_data_set.description is None
    with pytest.raises(UserErrorException, match="must be registered"):
        tab_data_set.add_tags({"a": "b"})
    tab_data_set = tab_data_set.register(
        workspace=ws, name="diabetes dataset", description="diabetes data", tags={"format": "CSV"}
    )
    assert len(tab_data_set.id) == 36 and tab_data_set.description == "diabetes data"
    assert Dataset.get_by_id(ws, id=tab_data_set.id).to_pandas_dataframe().values.tolist() == [[1, 2]]
    tab_data_set.add_tags({"stage": "raw"})
    assert tab_data_set.tags == {"format": "CSV", "stage": "raw"}
    with pytest.raises(UserErrorException, match=r"different values for tags with the following keys \['stage'\]"):
        tab_data_set.add_tags({"stage": "clean"})
    updated = tab_data_set.remove_tags(["format"]).update(description="")
    assert (updated.description, updated.tags) == ("", {"stage": "raw"})
    again = TabularDataset.get_by_name(ws, "diabetes dataset")
    assert (again.id, again.description, again.tags) == (tab_data_set.id, "", {"stage": "raw"})
    assert again.update(tags={}).tags == {} and Dataset.get_by_name(ws, "diabetes dataset").tags == {}
    changed = again.data_changed_time
    assert changed.tzinfo is not None and abs(changed.timestamp() - tab_data_set.registration.created_at) < 1

    project("files/f.txt", "f")
    files = Dataset.File.from_files(str(ws.root / "files")).register(ws, "files")
    assert sorted(Dataset.get_all(ws)) == ["diabetes dataset", "files"] == sorted(ws.datasets)
    assert type(Dataset.get_all(ws)["files"]).__name__ == "FileDataset"
    first_id = files.id
    files.unregister_all_versions()
    assert files.name is None and files.id is None and sorted(Dataset.get_all(ws)) == ["diabetes dataset"]
    assert (ws.root / "files/f.txt").exists()
    with pytest.raises(NotFoundError, match='"files" is not registered'):
        Dataset.get_by_name(ws, "files")
    with pytest.raises(UserErrorException, match='Cannot find dataset with id "nope"'):
        Dataset.get_by_id(ws, "nope")
    assert Dataset.File.from_files(str(ws.root / "files")).register(ws, "files").id != first_id


def test_partition_format_keys_values_and_file_filters_as_the_partition_per_folder_sample(ws, project):
    """file-dataset-partition-per-folder: from_files with partition_format, partition_keys, then the
    values and a filter on them and on file metadata."""
    for user, season, genre, text in [("u1", "spring", "piano", "aa"), ("u1", "fall", "rock", "b"),
                                      ("u2", "spring", "piano", "cccc")]:  # fmt: skip
        project(f"ws_data/dataset_partition_test/{user}/{season}/{genre}.wav", text)
    datastore = Datastore.register_local(ws, "audio", ws.root / "ws_data")
    partitioned_file_dataset = Dataset.File.from_files(
        path=(datastore, "dataset_partition_test/*/*/*.wav"),
        partition_format="dataset_partition_test/{user}/{season}/{genres}.wav",
        validate=False,
    )
    assert partitioned_file_dataset.partition_keys == ["user", "season", "genres"]
    assert partitioned_file_dataset.get_partition_key_values(["user", "genres"]) == [
        {"user": "u1", "genres": "rock"},
        {"user": "u1", "genres": "piano"},
        {"user": "u2", "genres": "piano"},
    ]
    pianos = partitioned_file_dataset.filter(partitioned_file_dataset["genres"] == "piano")
    assert pianos.to_path() == ["/u1/spring/piano.wav", "/u2/spring/piano.wav"]
    small = partitioned_file_dataset.filter(partitioned_file_dataset.file_metadata("Size") < 3)
    assert small.to_path() == ["/u1/fall/rock.wav", "/u1/spring/piano.wav"]
    registered = pianos.register(ws, "pianos")
    assert Dataset.get_by_name(ws, "pianos").get_partition_key_values(["user"]) == [{"user": "u1"}, {"user": "u2"}]
    assert registered.partition_keys == ["user", "season", "genres"]
    with pytest.raises(UserErrorException, match=r"\['nope'\] are invalid partition keys"):
        partitioned_file_dataset.get_partition_key_values(["nope"])
    with pytest.raises(UserErrorException, match="no partition keys"):
        Dataset.File.from_files((datastore, "dataset_partition_test")).get_partition_key_values()
    with pytest.raises(UserErrorException, match="not a dataset expression"):
        partitioned_file_dataset.filter("genres == 'piano'")


def test_tabular_partition_format_timestamps_and_time_filters(ws, project):
    """continuous-retraining's partition_format with a date, then the energy-demand sample's
    with_timestamp_columns and time_before / time_between."""
    import datetime

    for day in (1, 2, 3):
        project(f"weather/2017/08/0{day}/00/00/00/data.csv", f"temp,when\n{day * 10},2017-08-0{day} 06:00:00\n")
    dstor = ws.get_default_datastore()
    dstor.upload(str(ws.root / "weather"), target_path="weather")
    ds = Dataset.Tabular.from_delimited_files(
        dstor.path("weather/**/*.csv"),
        partition_format="/{partition_date:yyyy/MM/dd/HH/mm/ss}/data.csv",
        set_column_types={"when": datetime.datetime},
    )
    frame = ds.to_pandas_dataframe()
    assert list(frame.columns) == ["partition_date", "temp", "when"]
    assert frame["partition_date"].tolist() == [datetime.datetime(2017, 8, d) for d in (1, 2, 3)]
    with pytest.raises(DatasetTimestampMissingError, match="without timestamp columns defined"):
        ds.time_before(datetime.datetime(2017, 8, 2))
    with pytest.raises(UserErrorException, match="only if timestamp is assigned"):
        ds.with_timestamp_columns(partition_timestamp="partition_date")
    dataset = ds.with_timestamp_columns(timestamp="when", partition_timestamp="partition_date", validate=True)
    assert dataset.timestamp_columns == ("when", "partition_date")
    assert dataset.time_before(datetime.datetime(2017, 8, 2, 6)).to_pandas_dataframe()["temp"].tolist() == [10, 20]
    before = dataset.time_before(datetime.datetime(2017, 8, 2, 6), include_boundary=False)
    assert before.to_pandas_dataframe()["temp"].tolist() == [10]
    between = dataset.time_between(datetime.datetime(2017, 8, 1, 7), datetime.datetime(2017, 8, 3, 5))
    assert between.to_pandas_dataframe()["temp"].tolist() == [20]
    after = dataset.time_after(datetime.datetime(2017, 8, 2))
    assert after.to_pandas_dataframe().index.tolist() == [datetime.datetime(2017, 8, d, 6) for d in (2, 3)]
    assert dataset.time_recent(datetime.timedelta(days=1)).to_pandas_dataframe().empty
    assert dataset.drop_columns("partition_date").timestamp_columns == ("when", None)
    assert dataset.keep_columns(["temp"]).timestamp_columns == (None, None)
    with pytest.raises(DatasetTimestampMissingError, match="`time_after` on dataset without timestamp columns"):
        dataset.drop_columns("when").time_after(datetime.datetime(2017, 8, 2))  # dropped with its column
    warm = dataset.filter((dataset["temp"] > 10) & ~(dataset["temp"] == 30))
    assert warm.to_pandas_dataframe()["temp"].tolist() == [20]
    frame = dataset.to_pandas_dataframe()  # values read from a DataFrame are NumPy's scalars
    second = (frame["temp"].iloc[1], frame["when"].to_numpy()[1])  # np.int64, np.datetime64 in nanoseconds
    at_least = dataset.filter((dataset["temp"] >= second[0]) & (dataset["when"] <= second[1]))
    assert at_least.to_pandas_dataframe()["temp"].tolist() == [20]
    kept = after.register(ws, "weather")
    assert Dataset.get_by_name(ws, "weather").to_pandas_dataframe()["temp"].tolist() == [20, 30]
    assert kept.timestamp_columns == ("when", "partition_date")
    with pytest.raises(TypeError, match="unexpected keyword argument 'timestamps'"):
        ds.with_timestamp_columns(timestamps="when")


def test_partition_by_writes_a_folder_per_key_as_the_partition_per_column_sample(ws, project):
    pytest.importorskip("pyarrow")
    project("oj/oj_sales_data/a.csv", "Store,Brand,Quantity\n1,tropicana,5\n1,dominicks,6\n2,tropicana,7\n")
    datastore = ws.get_default_datastore()
    datastore.upload(str(ws.root / "oj"), target_path="")
    dataset = Dataset.Tabular.from_delimited_files(path=(datastore, "oj_sales_data/*.csv"))
    partitioned_dataset = dataset.partition_by(
        partition_keys=["Store", "Brand"], target=(datastore, "partition_by_key_res"), name="partitioned_oj_data"
    )
    assert partitioned_dataset.partition_keys == ["Store", "Brand"]
    assert partitioned_dataset.name == "partitioned_oj_data" and partitioned_dataset.version == 1
    rows = partitioned_dataset.to_pandas_dataframe().sort_values("Quantity")
    assert rows.values.tolist() == [[1, "tropicana", 5], [1, "dominicks", 6], [2, "tropicana", 7]]
    assert partitioned_dataset.get_partition_key_values(["Store"]) == [{"Store": "1"}, {"Store": "2"}]
    files = dataset.partition_by(["Brand"], (datastore, "by_brand"), partition_as_file_dataset=True)
    assert sorted(p.split("/", 2)[1] for p in files.to_path()) == ["dominicks", "tropicana"]
    with pytest.raises(UserErrorException, match=r"\['Shop'\] are invalid partition keys"):
        dataset.partition_by(["Shop"], (datastore, "x"))


def test_datastore_set_as_default_and_unregister(ws, project):
    project("elsewhere/keep.txt", "kept")
    store = Datastore.register_local(ws, "mine", ws.root / "elsewhere")
    store.set_as_default()
    assert ws.get_default_datastore().name == "mine" == Datastore(ws).name == Datastore.get_default(ws).name
    with pytest.raises(UserErrorException, match='"workspaceblobstore" is built into the workspace'):
        Datastore.get(ws, "workspaceblobstore").unregister()
    Datastore.get(ws, "mine").unregister()
    assert (ws.root / "elsewhere/keep.txt").read_text() == "kept"
    assert "mine" not in ws.datastores and ws.get_default_datastore().name == "workspaceblobstore"
    with pytest.raises(NotFoundError, match='datastore "mine" is not registered'):
        Datastore.get(ws, "mine")


def test_the_sdks_placeholders_of_data_in_a_command_line(ws, project):
    project("d/x.csv", "1")
    output = OutputFileDatasetConfig(name="prediction_result")
    assert output.arg_val == "DatasetOutputConfig:prediction_result" and output.mode == "mount"
    assert output.as_upload(overwrite=True).mode == "upload"
    named = Dataset.File.from_files(str(ws.root / "d")).as_named_input("raw")
    assert named.arg_val == "DatasetConsumptionConfig:raw"
    processed = PipelineData("processed_data1", datastore=ws.get_default_datastore())
    assert processed.get_env_variable_name() == "$AZUREML_DATAREFERENCE_processed_data1" == str(processed)


def test_a_script_runs_run_configuration_data_is_its_inputs_and_outputs(ws, project):
    """train-tensorflow-resume-training: a DataReference in run_config.data_references, passed as
    str(data_ref) in the arguments; with a dataset in run_config.data and an output in output_data,
    each passed by its arg_val."""
    from localpipe import Experiment, ScriptRunConfig

    project("checkpoints/model.ckpt", "step 100")
    project("raw/a.txt", "a")
    store = ws.get_default_datastore()
    store.upload(str(ws.root / "checkpoints"), target_path="run-1/outputs")
    project(
        "tf-resume-training/train.py",
        """
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--resume-from")
parser.add_argument("--raw")
parser.add_argument("--out")
args = parser.parse_args()
ckpt = open(os.path.join(args.resume_from, "model.ckpt")).read()
files = sorted(os.listdir(args.raw))
open(os.path.join(args.out, "resumed.txt"), "w").write(f"{ckpt} {files}")
""",
    )
    checkpoint_path = DataPath(store, "run-1/outputs")
    checkpoint_data_ref = checkpoint_path.create_data_reference(
        datapath_compute_binding=DataPathComputeBinding(mode="mount")
    )
    raw = Dataset.File.from_files(str(ws.root / "raw")).as_named_input("raw").as_mount()
    result = OutputFileDatasetConfig(name="result").register_on_complete("resumed")
    args = ["--resume-from", str(checkpoint_data_ref), "--raw", raw.arg_val, "--out", result.arg_val]
    src = ScriptRunConfig(source_directory=str(ws.root / "tf-resume-training"), script="train.py", arguments=args)
    src.run_config.data_references = {checkpoint_data_ref.data_reference_name: checkpoint_data_ref.to_config()}
    src.run_config.data = {"raw": raw}
    src.run_config.output_data = {"result": result}
    resumed_run = Experiment(ws, "tf-resume-training").submit(src)
    assert resumed_run.wait_for_completion(show_output=False)["status"] == "Completed"
    written = Dataset.get_by_name(ws, "resumed").files()
    assert open(written[0]).read() == "step 100 ['a.txt']"
    with pytest.raises(UserErrorException, match="RunConfiguration.data holds data objects"):
        src.run_config.save(str(ws.root / "tf-resume-training"), name="resume")
    src.run_config.data = {"raw": Dataset.File.from_files(str(ws.root / "raw"))}
    with pytest.raises(UsageError, match=r"RunConfiguration.data\['raw'\] .*as_named_input\('raw'\)"):
        src.step()


@pytest.mark.parametrize("name", ["data/../../../../pwned.txt", "data/sub/../../../../../pwned.txt"])
def test_a_blob_listed_with_a_name_leading_out_of_the_mirror_is_refused(ws, blob_proxy, name):
    """Found by the paths review (tests/test_paths_review.py): the names a container's List Blobs
    answer gives were joined to its mirror's folder as they came, so a container (a third party's:
    the samples read public ones) listing "data/../../../../pwned.txt" had that file written outside
    the mirror, anywhere the user may write. The listing is refused, naming the blob; nothing is
    written."""
    web = blob_proxy
    web.files["/sampledata/data/fine.csv"] = b"a\n1\n"
    web.files[f"/sampledata/{name}"] = b"written outside\n"
    escaped = os.path.join(os.path.dirname(os.environ["LOCALPIPE_CACHE_DIR"]), "pwned.txt")
    store = Datastore.register_azure_blob_container(
        ws, datastore_name="hostile", container_name="sampledata", account_name="hostile", protocol="http"
    )
    with pytest.raises(UsageError) as refused:
        Dataset.File.from_files(path=(store, "data/"))
    assert str(refused.value) == (
        f'Dataset.File.from_files: "http://hostile.blob.core.windows.net/sampledata" lists a blob named '
        f"{name!r}, which leads out of the container's folder: the container cannot be read here"
    )
    assert not os.path.exists(escaped)


def test_a_url_whose_name_is_meta_json_or_climbs_keeps_its_bytes_in_its_own_folder(web):
    """Found by the paths review (tests/test_paths_review.py): a URL's file was kept under the last
    segment of its path, unquoted, next to meta.json (its ETag): a file named meta.json was
    overwritten by that record, so the dataset read the record instead of the data; a name with an
    encoded "/" ("..%2F..%2Fx.csv") was written out of its folder of the download cache."""
    web.files["/data/meta.json"] = b'{"the": "data"}\n'
    web.files["/data/..%2F..%2Fx.csv"] = b"a\n1\n"
    [meta] = Dataset.File.from_files(web.url + "/data/meta.json").paths
    assert open(meta, "rb").read() == b'{"the": "data"}\n'
    downloads = os.path.join(os.environ["LOCALPIPE_CACHE_DIR"], "downloads")
    before = set(os.listdir(downloads))
    [climbing] = Dataset.File.from_files(web.url + "/data/..%2F..%2Fx.csv").paths
    assert open(climbing, "rb").read() == b"a\n1\n"
    assert os.path.dirname(os.path.dirname(climbing)) == downloads
    folder = os.path.basename(os.path.dirname(climbing))
    assert set(os.listdir(downloads)) - before == {folder, folder + ".json"}  # its ETag beside it
    assert not os.path.exists(os.path.join(os.environ["LOCALPIPE_CACHE_DIR"], "x.csv"))
