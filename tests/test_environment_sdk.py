"""The environment declarations (Azure's CondaDependencies and Environment API) and what planning
makes of them, without building anything."""

from __future__ import annotations

import sys

import pytest

from localpipe.errors import UserErrorException
from localpipe.plan import environments
from localpipe.plan.graph import Capacity
from localpipe.sdk.environment import CondaDependencies, Environment, RunConfiguration


def resolve(env: Environment, capacity=None, variables=None) -> tuple[dict, list[str]]:
    found: list[str] = []
    return environments.resolve('step "s"', env, capacity, found, variables or {}), found


def with_packages(name: str, **create) -> Environment:
    env = Environment(name)
    env.python.conda_dependencies = CondaDependencies.create(**create)
    return env


def test_conda_dependencies_keep_azures_structure_and_semantics():
    base = CondaDependencies()
    assert list(base.pip_packages) == ["azureml-defaults"]
    assert base.get_python_version() is None  # the local interpreter, not Azure's 3.8.13

    cd = CondaDependencies.create(conda_packages=["scikit-learn", "scikit-learn"], pip_packages=["pandas==2.2"])
    assert list(cd.pip_packages) == ["pandas==2.2"]  # given pip packages replace azureml-defaults
    assert list(cd.conda_packages) == ["scikit-learn"]
    cd.add_pip_package("pandas>=2.0")  # replaces the package of the same name
    cd.add_pip_package("six")
    assert list(cd.pip_packages) == ["pandas>=2.0", "six"]
    cd.remove_pip_package("PANDAS")
    assert list(cd.pip_packages) == ["six"]
    cd.set_pip_option("--index-url https://example.invalid/simple")
    cd.set_pip_option("--index-url https://other.invalid/simple")
    assert list(cd.pip_options) == ["--index-url https://other.invalid/simple"]
    cd.add_conda_package("python=3.10")
    assert cd.get_python_version() == "3.10" and "python=3.10" in list(cd.conda_packages)
    with pytest.raises(UserErrorException, match="python must not be removed"):
        cd.remove_conda_package("python=3.10")
    with pytest.raises(UserErrorException, match="Invalid package name"):
        cd.add_pip_package("--no-deps")
    assert CondaDependencies.merge_requirements(["a>=1", "b", "a<2"]) == ["a>=1,<2", "b"]
    assert "six" in cd.serialize_to_string() and cd.as_dict()["channels"] == ["anaconda", "conda-forge"]


def test_a_conda_specification_file_round_trips(tmp_path):
    spec = tmp_path / "env.yml"
    spec.write_text("name: x\nchannels: [conda-forge]\ndependencies:\n  - numpy=1.26\n  - pip:\n    - six\n")
    cd = CondaDependencies(spec)
    assert list(cd.conda_packages) == ["numpy=1.26"] and list(cd.pip_packages) == ["six"]
    again = CondaDependencies(cd.save(tmp_path / "out.yml"))
    assert again == cd
    (tmp_path / "bad.yml").write_text("name: x\nsurprise: 1\n")
    with pytest.raises(UserErrorException, match="unknown surprise key"):
        CondaDependencies(tmp_path / "bad.yml")
    (tmp_path / "broken.yml").write_text("name: [x\n")
    with pytest.raises(UserErrorException, match="is not valid YAML at line"):
        CondaDependencies(tmp_path / "broken.yml")


def test_user_managed_defaults_to_false_and_nothing_to_install_runs_on_localpipes_interpreter():
    plain = Environment("plain")
    assert plain.python.user_managed_dependencies is False  # Azure's default
    assert resolve(plain)[0]["kind"] == "python"  # nothing to install: localpipe's interpreter
    assert resolve(RunConfiguration().environment)[0]["kind"] == "python"
    assert (
        resolve(with_packages("azure-only", pip_packages=["azureml-sdk"], conda_packages=["pip"]))[0]["kind"]
        == "python"
    )
    assert resolve(with_packages("p", pip_packages=["six"]))[0]["kind"] == "venv"
    assert resolve(with_packages("version-only", python_version="3.11"))[0]["kind"] == "venv"
    explicit = with_packages("explicit", pip_packages=["six"])
    explicit.python.user_managed_dependencies = True
    assert resolve(explicit)[0]["kind"] == "python"  # Azure's meaning: you manage that interpreter


def test_the_digest_covers_packages_not_names_and_leaves_out_what_localpipe_provides():
    one, found = resolve(with_packages("one", pip_packages=["six", "azureml-defaults", "azureml-dataprep[fuse]"]))
    two, _ = resolve(with_packages("two", pip_packages=["six"]))
    assert found == []
    assert one["kind"] == "venv" and one["digest"] == two["digest"]
    assert one["dropped"] == [
        "azureml-defaults (localpipe provides it)",
        "azureml-dataprep[fuse] (localpipe provides it)",
    ]
    assert one["requirements"] == ["six"] and one["base"] == two["base"]
    other, _ = resolve(with_packages("one", pip_packages=["six==1.16"]))
    assert other["digest"] != one["digest"]


@pytest.mark.parametrize(
    "conda, pip",
    [
        ("pytorch", "torch"),
        ("py-xgboost=1.7", "xgboost==1.7.*"),
        ("numpy 1.26", "numpy==1.26.*"),
        ("numpy==1.26.4", "numpy==1.26.4"),
        ("numpy=1.26.4=py311h0", "numpy==1.26.4.*"),
        ("conda-forge::pandas>=2", "pandas>=2"),
        ("scipy=1.*", "scipy==1.*"),
    ],
)
def test_conda_packages_become_their_pypi_requirements(conda, pip):
    resolved, found = resolve(with_packages("c", conda_packages=[conda]))
    assert found == [] and resolved["requirements"] == [pip]


def test_python_versions_are_matched_by_major_and_minor_or_refused():
    local = ".".join(map(str, sys.version_info[:2]))
    same, found = resolve(with_packages("p", python_version=f"{local}.99"))
    assert found == [] and same["interpreter"] == sys.executable
    machine = Capacity(2, 2**30, pythons=lambda: [("3.11.7", "/opt/py311"), ("3.9.18", "/opt/py39")])
    older, found = resolve(with_packages("p", python_version="3.9"), machine)
    assert found == [] and (older["interpreter"], older["python"]) == ("/opt/py39", "3.9.18")
    _, found = resolve(with_packages("p", python_version="3.7"), machine)
    assert found == [
        'step "s": environment "p": Python 3.7 is not on this machine (found: 3.11.7 (/opt/py311), '
        "3.9.18 (/opt/py39)): install it (pyenv, uv python install), or set LOCALPIPE_PYTHON_FALLBACK=closest "
        "to use the closest version"
    ]
    closest = Capacity(
        2, 2**30, pythons=lambda: [("3.11.7", "/opt/py311"), ("3.9.18", "/opt/py39")], python_fallback=True
    )
    chosen, found = resolve(with_packages("p", python_version="3.8"), closest)
    assert found == [] and chosen["interpreter"] == "/opt/py39"


def test_environment_variables_reach_the_definition_and_bad_names_are_refused():
    env = Environment("vars")
    env.environment_variables = {"A": "1"}
    resolved, found = resolve(env, variables={"B": 2})
    assert found == [] and resolved["variables"] == {"A": "1", "B": "2"}
    _, found = resolve(env, variables={"A=B": "x"})
    assert found and "cannot name an environment variable" in found[0]


def test_registered_environments_keep_their_definition(ws):
    env = with_packages("kept", pip_packages=["six"], python_version="3.11")
    env.environment_variables = {"X": "1"}
    assert env.register(ws).version == "1"
    assert env.register(ws).version == "1"  # unchanged: no new version
    got = Environment.get(ws, "kept")
    assert list(got.python.conda_dependencies.pip_packages) == ["six"]
    assert got.python.conda_dependencies.get_python_version() == "3.11"
    assert got.environment_variables == {"X": "1"} and not got.python.user_managed_dependencies
    assert resolve(got)[0]["digest"] == resolve(env)[0]["digest"]
    clone = got.clone("copy")
    assert (clone.name, clone.version) == ("copy", None)
    assert {"kept", "AzureML-Tutorial", "AzureML-Minimal"} <= set(Environment.list(ws))


def test_requirements_have_one_spelling_and_one_order():
    """Cosmetic differences build nothing new, and the order never depends on the hash seed."""
    a, _ = resolve(with_packages("a", pip_packages=["TinyB == 1.0", "tinyb_extra>=2", "Zeta"]))
    b, _ = resolve(with_packages("b", pip_packages=["zeta", "tinyb==1.0", "TinyB-Extra >= 2"]))
    assert a["requirements"] == ["tinyb-extra>=2", "tinyb==1.0", "zeta"] and a["digest"] == b["digest"]
    marker, _ = resolve(with_packages("m", pip_packages=['pywin32 ; sys_platform == "win32"']))
    assert marker["requirements"] == ['pywin32; sys_platform == "win32"']


def test_local_files_in_requirements_are_part_of_the_definition(tmp_path, monkeypatch):
    """A wheel, a folder or an included requirements file is keyed by its content, not its spelling,
    and relative paths mean the pipeline file's folder (the working directory while it loads)."""
    wheel = tmp_path / "dist" / "pkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"one")
    (tmp_path / "base.txt").write_text("six==1.16 \\\n    --hash=sha256:abc\n# a comment\n")
    (tmp_path / "requirements.txt").write_text("-r base.txt\n./dist/pkg-1.0-py3-none-any.whl\n")
    monkeypatch.chdir(tmp_path)
    env = Environment.from_pip_requirements("files", "requirements.txt")
    first, found = resolve(env)
    assert found == []
    assert first["requirements"] == [str(wheel), "six==1.16--hash=sha256:abc"] or str(wheel) in first["requirements"]
    assert str(wheel) in first["local"]
    wheel.write_bytes(b"two")  # same name, other content: another definition
    second, _ = resolve(env)
    assert second["digest"] != first["digest"]
    (tmp_path / "base.txt").write_text("six==1.17\n")
    third, _ = resolve(Environment.from_pip_requirements("files", "requirements.txt"))
    assert "six==1.17" in third["requirements"] and third["digest"] != second["digest"]


@pytest.mark.parametrize(
    "pip, culprit",
    [
        (["six\n-r /etc/hostname"], "is not one line of text"),
        (["-e /tmp/some/project"], "editable install"),
        (["--prefix /somewhere"], 'pip option "--prefix /somewhere" is not one localpipe passes on'),
        (["-r relative.txt"], "names no readable file by an absolute path"),
        (["/no/such/wheel-1.0-py3-none-any.whl"], "does not exist"),
    ],
)
def test_requirements_that_would_reach_outside_the_build_are_refused(pip, culprit):
    env = Environment("odd")
    env.python.conda_dependencies = CondaDependencies()
    env.python.conda_dependencies._pip_list()[:] = pip  # as a YAML file could hold them
    _, found = resolve(env)
    assert found and culprit in found[0], found


def test_an_environment_name_with_a_line_break_is_refused():
    _, found = resolve(with_packages("two\nlines", pip_packages=["six"]))
    assert found == ["step \"s\": environment name 'two\\nlines' holds a control character (a line break): remove it"]


@pytest.mark.parametrize(
    "conda, pip",
    [("numpy 1.26.4 py311h0_0", "numpy==1.26.4.*"), ("numpy[version='>=1.26']", "numpy>=1.26")],
)
def test_more_conda_spec_forms(conda, pip):
    resolved, found = resolve(with_packages("c", conda_packages=[conda]))
    assert found == [] and resolved["requirements"] == [pip]


def test_conda_system_libraries_are_left_out_and_cuda_packages_refused():
    resolved, found = resolve(with_packages("c", conda_packages=["openssl=3.0", "zlib", "six", "pip=23"]))
    assert found == [] and resolved["requirements"] == ["six"]
    assert resolved["dropped"][0].startswith("openssl=3.0 (a system library")
    _, found = resolve(with_packages("c", conda_packages=["pytorch-cuda=12.1"]))
    assert found and 'conda package "pytorch-cuda" has no PyPI equivalent' in found[0]


@pytest.mark.parametrize(
    "spec, chosen",
    [
        (">=3.9", "local"),
        ("<3.12", "local"),
        ("<3.11", "/opt/py310"),
        (">=3.8,<3.10", "/opt/py39"),
        ("=3.9", "/opt/py39"),
    ],
)
def test_python_version_operators_compare(spec, chosen):
    machine = Capacity(2, 2**30, pythons=lambda: [("3.9.18", "/opt/py39"), ("3.10.13", "/opt/py310")])
    resolved, found = resolve(with_packages("p", conda_packages=[f"python{spec}"]), machine)
    assert found == []
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the cases assume localpipe runs on Python 3.11")
    assert resolved["interpreter"] == (sys.executable if chosen == "local" else chosen)
