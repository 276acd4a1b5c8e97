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
    assert one["dropped"] == ["azureml-defaults", "azureml-dataprep[fuse]"]
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
