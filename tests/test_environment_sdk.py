"""The environment declarations (Azure's CondaDependencies and Environment API) and what planning
makes of them, without building anything."""

from __future__ import annotations

import json
import os
import sys
import warnings

import pytest

from localpipe.errors import UsageError, UserErrorException
from localpipe.plan import environments
from localpipe.plan.graph import Capacity
from localpipe.sdk.conda import CondaDependencies, local_path
from localpipe.sdk.environment import Environment
from localpipe.sdk.runconfig import RunConfiguration


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


@pytest.mark.parametrize(
    "dependencies, culprit",
    [
        ("dependencies: {numpy: 1}", "its dependencies are not a list"),
        ("dependencies:\n  - pip: six", "its pip: section is not a list"),
        ("dependencies:\n  - pip:\n    - 1.0", "1.0 is not a package specification"),
        ("dependencies:\n  - 3.11", "3.11 is not a package specification"),
        ("dependencies:\n  - {channels: [x]}", "{'channels': ['x']} is not a package specification"),
        ("dependencies:\n  - pip: [six]\n  - numpy\n  - pip: [lp-tiny]", "it has 2 pip: sections: join them into one"),
    ],
)
def test_a_conda_specification_of_another_shape_is_one_clear_error(tmp_path, dependencies, culprit):
    """Shapes conda does not take were a TypeError or AttributeError while the pipeline file loaded,
    or left out without a word."""
    spec = tmp_path / "env.yml"
    spec.write_text(f"name: x\n{dependencies}\n")
    with pytest.raises(UserErrorException, match=f"^Environment error: conda specification {spec}: ") as raised:
        Environment.from_conda_specification("odd", spec)
    assert culprit in str(raised.value)


def test_a_conda_specification_with_empty_dependencies_has_no_packages(tmp_path):
    (tmp_path / "env.yml").write_text("name: x\ndependencies:\n")
    env = Environment.from_conda_specification("empty", tmp_path / "env.yml")
    assert list(env.python.conda_dependencies.pip_packages) == [] and resolve(env)[0]["kind"] == "python"


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


def test_a_user_managed_interpreter_that_is_not_there_is_refused_before_anything_runs(tmp_path):
    """It failed each step at run time ("could not start"), after the steps before it had run."""
    env = Environment("mine")
    env.python.user_managed_dependencies = True
    for path, why in [
        ("/nonexistent/python3", "no such file"),
        (str(tmp_path), "not an executable file"),
        ("no-such-python-here", "not found on PATH"),
    ]:
        env.python.interpreter_path = path
        _, found = resolve(env)
        assert found == [
            f'step "s": environment "mine": python.interpreter_path {path!r} is {why}: fix it, or leave it out to '
            "run on localpipe's interpreter"
        ], found
    env.python.interpreter_path = os.path.basename(sys.executable)  # a name, looked up on PATH
    assert resolve(env, variables={"PATH": os.path.dirname(sys.executable)})[1] == []


def test_an_azure_interpreter_path_without_user_managed_dependencies_runs_on_localpipes_interpreter(tmp_path):
    """Azure writes interpreterPath "python" into every environment it saves: with nothing to install
    and user_managed_dependencies False, the step ran on whatever "python" PATH found, not on
    localpipe's interpreter as docs/environments.md says."""
    (tmp_path / "azureml_environment.json").write_text(
        json.dumps(
            {
                "name": "saved-by-azure",
                "version": "3",
                "python": {"interpreterPath": "python", "userManagedDependencies": False},
                "docker": {"enabled": False, "baseImage": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"},
                "environmentVariables": {},
            }
        )
    )
    (tmp_path / "conda_dependencies.yml").write_text("name: x\ndependencies:\n- pip:\n  - azureml-defaults\n")
    resolved, found = resolve(Environment.load_from_directory(tmp_path))
    assert found == [] and resolved["kind"] == "python" and resolved["interpreter"] == sys.executable, resolved


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


@pytest.mark.parametrize("spec", ["python=3.9.18=h955ad1f_0", "python==3.9.18=h955ad1f_0", "python 3.9.18 h955ad1f_0"])
def test_the_build_string_of_a_python_that_conda_env_export_wrote_is_left_out(tmp_path, spec):
    """`conda env export` (without --no-builds) writes each package with its build string, Python's too."""
    (tmp_path / "env.yml").write_text(f"name: x\ndependencies:\n  - {spec}\n  - six=1.16.0=pyhd3eb1b0_1\n")
    machine = Capacity(2, 2**30, pythons=lambda: [("3.11.7", "/opt/py311"), ("3.9.18", "/opt/py39")])
    resolved, found = resolve(Environment.from_conda_specification("exported", tmp_path / "env.yml"), machine)
    assert found == [] and (resolved["interpreter"], resolved["python"]) == ("/opt/py39", "3.9.18")
    assert resolved["requirements"] == ["six==1.16.0.*"]


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
    first = env.register(ws)  # a new object, as the SDK returns: the next version does not change it
    env.python.conda_dependencies.add_pip_package("lp-tiny")
    assert (env.register(ws).version, first.version, list(first.python.conda_dependencies.pip_packages)) == (
        "2",
        "1",
        ["six"],
    )
    assert {"kept", "AzureML-Tutorial", "AzureML-Minimal"} <= set(Environment.list(ws))


def test_getting_a_version_that_is_not_there_says_which_versions_are(ws):
    """Environment.get(ws, name, version=7) said the environment "is not registered" when it was (in
    other versions), and a version that is not a number was a ValueError from int()."""
    from localpipe.errors import NotFoundError

    with_packages("kept", pip_packages=["six"]).register(ws)
    assert Environment.get(ws, "kept", version=1).version == "1"
    with pytest.raises(NotFoundError, match='^environment "kept" has no version 7 \\(its versions: 1\\)'):
        Environment.get(ws, "kept", version="7")
    with pytest.raises(UserErrorException, match="^version 'latest' of environment \"kept\" is not a version number"):
        Environment.get(ws, "kept", version="latest")
    with pytest.raises(NotFoundError, match='^environment "nope" is not registered'):
        Environment.get(ws, "nope", version="1")


def test_a_base_image_registry_is_kept_with_its_address_and_user_never_its_password(ws):
    from localpipe.sdk.environment import ContainerRegistry

    env = Environment("plain")
    registry = env.docker.base_image_registry  # what the using-environments sample reads
    assert (registry.address, registry.username, registry.password, registry.registry_identity) == (None,) * 4
    assert "base_image_registry" not in env.docker._to_spec()  # no address: the definition as before
    registry.address, registry.username, registry.password = "myregistry.azurecr.io", "robot", "s3cret"
    assert env.docker.image_reference == f"myregistry.azurecr.io/{env.docker.base_image}"
    assert "s3cret" not in repr(registry) and "s3cret" not in json.dumps(env.docker._to_spec())
    env.register(ws)
    got = Environment.get(ws, "plain").docker.base_image_registry
    assert isinstance(got, ContainerRegistry)
    assert (got.address, got.username, got.password) == ("myregistry.azurecr.io", "robot", None)
    assert b"s3cret" not in (ws.root / ".localpipe" / "history.db").read_bytes()


def test_requirements_have_one_spelling_and_one_order():
    """Cosmetic differences build nothing new, and the order never depends on the hash seed."""
    a, _ = resolve(with_packages("a", pip_packages=["TinyB == 1.0", "tinyb_extra>=2", "Zeta"]))
    b, _ = resolve(with_packages("b", pip_packages=["zeta", "tinyb==1.0", "TinyB-Extra >= 2"]))
    assert a["requirements"] == ["tinyb-extra>=2", "tinyb==1.0", "zeta"] and a["digest"] == b["digest"]
    marker, _ = resolve(with_packages("m", pip_packages=['pywin32 ; sys_platform == "win32"']))
    assert marker["requirements"] == ['pywin32; sys_platform == "win32"']
    extras, _ = resolve(with_packages("e", pip_packages=["Pandas[Performance, Excel]>=2"]))
    again, _ = resolve(with_packages("e", pip_packages=["pandas[excel,performance] >= 2"]))
    assert extras["requirements"] == ["pandas[excel,performance]>=2"] and extras["digest"] == again["digest"]


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
    assert first["requirements"] == [str(wheel), "six==1.16 --hash=sha256:abc"]
    assert str(wheel) in first["local"]
    wheel.write_bytes(b"two")  # same name, other content: another definition
    second, _ = resolve(env)
    assert second["digest"] != first["digest"]
    (tmp_path / "base.txt").write_text("six==1.17\n")
    third, _ = resolve(Environment.from_pip_requirements("files", "requirements.txt"))
    assert "six==1.17" in third["requirements"] and third["digest"] != second["digest"]


def test_a_wheel_named_by_a_file_url_is_part_of_the_definition(tmp_path):
    """`name @ file:///...` (what pip freeze writes for a package installed from a local wheel) names
    a local file as `./dist/x.whl` does: a rebuilt wheel is another definition."""
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"one")
    env = with_packages("url", pip_packages=[f"pkg @ {wheel.as_uri()}"])
    first, found = resolve(env)
    assert found == [] and first["requirements"] == [f"pkg@{wheel.as_uri()}"] and str(wheel) in first["local"]
    wheel.write_bytes(b"two")
    second, _ = resolve(env)
    assert second["digest"] != first["digest"]
    wheel.unlink()
    _, found = resolve(env)
    assert found == [f'step "s": environment "url": pip package "pkg @ {wheel.as_uri()}" does not exist: fix the path']


def test_a_find_links_folder_is_made_absolute_and_its_content_is_part_of_the_definition(tmp_path, monkeypatch):
    """`--find-links ./wheels` in a requirements file failed to build ("relative URL without a base":
    the installer runs elsewhere), and the folder's wheels were not in the definition."""
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "pkg-1.0-py3-none-any.whl").write_bytes(b"one")
    (tmp_path / "requirements.txt").write_text("--find-links ./wheels\n-f=wheels\npkg\n")
    monkeypatch.chdir("/")
    env = Environment.from_pip_requirements("links", tmp_path / "requirements.txt")
    first, found = resolve(env)
    folder = str(tmp_path / "wheels")
    assert found == [] and first["options"] == [f"--find-links {folder}", f"-f {folder}"], (found, first)
    assert folder in first["local"]
    (tmp_path / "wheels" / "pkg-2.0-py3-none-any.whl").write_bytes(b"two")  # a new version to find
    assert resolve(env)[0]["digest"] != first["digest"]
    url = with_packages("url", pip_packages=["six"])
    url.python.conda_dependencies.set_pip_option("--find-links https://example.com/wheels")
    assert resolve(url)[0]["options"] == ["--find-links https://example.com/wheels"]
    monkeypatch.chdir(tmp_path)  # as a pipeline file loads, in its folder
    url.python.conda_dependencies.set_pip_option("--find-links wheels")
    assert resolve(url)[0]["options"] == [f"--find-links {folder}"]
    (tmp_path / "a=b.txt").write_text("six\n")
    assert local_path("-r a=b.txt", str(tmp_path)) == f"-r {tmp_path / 'a=b.txt'}"


def test_a_comment_after_a_tab_is_a_comment_as_pip_reads_it(tmp_path):
    """pip ends a requirement at a "#" after any blank: after a tab, the comment was glued onto the
    version (lp-tiny==1.0#pinned), which no installer takes."""
    (tmp_path / "base.txt").write_text("six==1.16\t# via base\n")
    (tmp_path / "requirements.txt").write_text("lp-tiny==1.0\t# pinned\n-r base.txt\nlp-other # x\n#whole line\n")
    resolved, found = resolve(Environment.from_pip_requirements("tabs", tmp_path / "requirements.txt"))
    assert found == [] and resolved["requirements"] == ["lp-other", "lp-tiny==1.0", "six==1.16"]


def test_paths_in_an_included_requirements_file_mean_its_own_folder(tmp_path, monkeypatch):
    """pip reads the relative paths of a file included with -r from that file's folder: here a
    nested -r, a -c and a wheel were refused as not absolute."""
    sub = tmp_path / "reqs" / "sub"
    sub.mkdir(parents=True)
    (tmp_path / "requirements.txt").write_text("-r reqs/base.txt\n")
    (tmp_path / "reqs" / "base.txt").write_text("-r sub/more.txt\n-c sub/cons.txt\n./sub/pkg-1.0-py3-none-any.whl\n")
    (sub / "more.txt").write_text("six\n")
    (sub / "cons.txt").write_text("six<2\n")
    (sub / "pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")
    monkeypatch.chdir("/")
    resolved, found = resolve(Environment.from_pip_requirements("nested", tmp_path / "requirements.txt"))
    assert found == [], found
    assert resolved["requirements"] == [str(sub / "pkg-1.0-py3-none-any.whl"), "six"]
    assert resolved["options"] == [f"-c {sub / 'cons.txt'}"]


def test_what_building_a_project_folder_writes_into_it_is_not_its_content(tmp_path):
    """Installing a project folder writes build/ and *.egg-info into it (setuptools): the next
    submission saw another definition, built it again and reran its steps, after each edit."""
    project = tmp_path / "mypkg"
    (project / "src" / "mine").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "mine"\nversion = "1.0"\n')
    (project / "src" / "mine" / "__init__.py").write_text("VERSION = 1\n")
    env = with_packages("folder", pip_packages=[str(project)])
    first, found = resolve(env)
    assert found == [] and str(project) in first["local"]
    (project / "build" / "lib" / "mine").mkdir(parents=True)
    (project / "build" / "lib" / "mine" / "__init__.py").write_text("VERSION = 1\n")
    (project / "src" / "mine.egg-info").mkdir()
    (project / "src" / "mine.egg-info" / "PKG-INFO").write_text("Name: mine\n")
    (project / "src" / "mine" / "__pycache__").mkdir()
    (project / "src" / "mine" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"pyc")
    assert resolve(env)[0]["digest"] == first["digest"]
    (project / "src" / "mine" / "__init__.py").write_text("VERSION = 2\n")
    assert resolve(env)[0]["digest"] != first["digest"]


@pytest.mark.parametrize(
    "pip, culprit",
    [
        (["six\n-r /etc/hostname"], "is not one line of text"),
        (["-e /tmp/some/project"], "editable install"),
        (["--prefix /somewhere"], 'pip option "--prefix /somewhere" is not one localpipe passes on'),
        (["-r relative.txt"], "names no readable file by an absolute path"),
        (["/no/such/wheel-1.0-py3-none-any.whl"], "does not exist"),
        (["--find-links /no/such/folder", "six"], '"--find-links /no/such/folder" names no folder by an absolute path'),
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


# -- issue 14, item 7: the rest of CondaDependencies, RunConfiguration's files, Environment's folders --


def test_conda_dependencies_as_the_using_environments_sample_builds_them(tmp_path):
    conda_dep = CondaDependencies()
    conda_dep.add_conda_package("scikit-learn==0.22.1")
    conda_dep.add_pip_package("pillow==6.2.1")
    assert list(conda_dep.conda_packages) == ["scikit-learn==0.22.1"]
    assert list(conda_dep.pip_packages) == ["azureml-defaults", "pillow==6.2.1"]
    assert conda_dep.get_default_number_of_packages() == (0, 1)  # azureml-defaults only
    assert (conda_dep.DEFAULT_NUMBER_OF_CONDA_PACKAGES, conda_dep.DEFAULT_NUMBER_OF_PIP_PACKAGES) == (0, 1)
    conda_dep.add_channel("pytorch")
    conda_dep.remove_channel("anaconda")
    assert list(conda_dep.conda_channels) == ["conda-forge", "pytorch"]

    conda_dep.add_tensorflow_pip_package()
    conda_dep.add_tensorflow_pip_package(version="2.16.1")  # replaces the first
    assert [p for p in conda_dep.pip_packages if p.startswith("tensorflow")] == ["tensorflow==2.16.1"]
    conda_dep.add_tensorflow_conda_package(core_type="gpu", version="2.16")
    assert "tensorflow-gpu=2.16" in list(conda_dep.conda_packages)
    conda_dep.add_cntk_package()
    assert "cntk==2.7" in list(conda_dep.pip_packages)
    with pytest.raises(UserErrorException, match="Invalid core type tpu. Only accept 'cpu' or 'gpu'"):
        conda_dep.add_tensorflow_pip_package(core_type="tpu")

    assert conda_dep.save_to_file(tmp_path) == ".azureml/auto_conda_dependencies.yml"
    assert CondaDependencies(tmp_path / ".azureml/auto_conda_dependencies.yml") == conda_dep
    assert conda_dep.save_to_file(tmp_path, "env.yml") == "env.yml" and (tmp_path / "env.yml").is_file()


def test_a_run_configuration_saved_in_a_project_loads_back(tmp_path):
    cd = CondaDependencies.create(pip_packages=["six==1.16.0"], conda_packages=["numpy"])
    run_config = RunConfiguration(script="train.py", arguments=["--alpha", "0.5"], conda_dependencies=cd)
    run_config.target = "cpu-cluster"
    run_config.environment_variables = {"STAGE": "dev"}
    run_config.max_run_duration_seconds = 600
    run_config.environment.environment_variables = {"FROM_ENV": "1"}
    run_config.max_retries = 2
    run_config.save(path=str(tmp_path), name="train.runconfig")
    saved = tmp_path / ".azureml/train.runconfig"
    assert "maxRunDurationSeconds: 600" in saved.read_text()
    assert (tmp_path / ".azureml/train_conda_dependencies.yml").is_file()

    for loaded in (
        RunConfiguration.load(str(tmp_path), "train.runconfig"),
        RunConfiguration.load(str(tmp_path), "train"),  # the .runconfig suffix may be left out
        RunConfiguration.load(str(saved)),
    ):
        assert (loaded.script, loaded.arguments, loaded.target) == ("train.py", ["--alpha", "0.5"], "cpu-cluster")
        assert loaded.environment_variables == {"STAGE": "dev"} and loaded.max_run_duration_seconds == 600
        assert loaded.environment.python.conda_dependencies == cd and loaded.max_retries == 2
        assert loaded.environment.environment_variables == {"FROM_ENV": "1"}
        assert resolve(loaded.environment)[0]["digest"] == resolve(run_config.environment)[0]["digest"]

    run_config.save(str(tmp_path / "elsewhere.yml"), separate_environment_yaml=True)  # a file path
    assert (tmp_path / "elsewhere_environment.yml").is_file()
    assert RunConfiguration.load(str(tmp_path / "elsewhere.yml")).environment.python.conda_dependencies == cd

    RunConfiguration.delete(str(tmp_path), "train")
    assert not saved.exists()
    with pytest.raises(UserErrorException, match="Run config train not found"):
        RunConfiguration.delete(str(tmp_path), "train")
    with pytest.raises(UserErrorException, match="Failed to load RunConfiguration from path=.* name=train"):
        RunConfiguration.load(str(tmp_path), "train")
    with pytest.raises(UserErrorException, match="Cannot save a runconfig without a name specified"):
        RunConfiguration().save(str(tmp_path))
    with pytest.raises(UserErrorException, match="argument is invalid"):
        RunConfiguration().save(str(tmp_path / "no" / "such" / "x.runconfig"))


AZURE_RUNCONFIG = """\
# The script to run.
script: score.py
arguments: []
target: local
framework: Python
communicator: None
maxRunDurationSeconds:
nodeCount: 1
priority:
environment:
  name: azure-env
  version:
  environmentVariables:
    EXAMPLE_ENV_VAR: EXAMPLE_VALUE
  python:
    userManagedDependencies: false
    interpreterPath: python
    condaDependenciesFile: .azureml/conda_dependencies.yml
    baseCondaEnvironment:
  docker:
    enabled: false
    baseImage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04
    baseDockerfile:
    sharedVolumes: true
    shmSize: 2g
    arguments: []
    baseImageRegistry:
      address:
      username:
      password:
  spark:
    repositories: []
    packages: []
    precachePackages: true
  databricks:
    mavenLibraries: []
  inferencingStackVersion:
history:
  outputCollection: true
  snapshotProject: true
  directoriesToWatch:
  - logs
spark:
  configuration:
    spark.app.name: Azure ML Experiment
hdi:
  yarnDeployMode: Cluster
mpi:
  processCountPerNode: 1
dataReferences: {}
amlcompute:
  vmSize:
  retainCluster: false
credentialPassthrough: false
command: ''
environmentVariables: {}
applicationEndpoints: {}
"""


def test_a_run_configuration_the_azure_cli_wrote_loads(tmp_path):
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml/score.runconfig").write_text(AZURE_RUNCONFIG)
    (tmp_path / ".azureml/conda_dependencies.yml").write_text(
        "name: project_environment\ndependencies:\n- python=3.11\n- pip:\n  - azureml-defaults\n  - six\n"
    )
    loaded = RunConfiguration.load(tmp_path, "score")
    assert (loaded.script, loaded.target, loaded.framework, loaded.node_count) == ("score.py", "local", "Python", 1)
    assert loaded.environment.name == "azure-env"
    assert list(loaded.environment.python.conda_dependencies.pip_packages) == ["azureml-defaults", "six"]
    assert loaded.environment.environment_variables == {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}
    assert resolve(loaded.environment)[0]["requirements"] == ["six"]


def test_an_environment_saved_to_a_directory_loads_back(tmp_path):
    env = with_packages("dir-env", pip_packages=["six==1.16.0"], python_version="3.11")
    env.environment_variables = {"A": "1"}
    env.docker.base_dockerfile = "FROM ubuntu:22.04\n"
    env.save_to_directory(str(tmp_path / "env"))
    assert sorted(p.name for p in (tmp_path / "env").iterdir()) == [
        "BaseDockerfile",
        "azureml_environment.json",
        "conda_dependencies.yml",
    ]
    loaded = Environment.load_from_directory(str(tmp_path / "env"))
    assert (loaded.name, loaded.environment_variables) == ("dir-env", {"A": "1"})
    assert loaded.docker.base_dockerfile == "FROM ubuntu:22.04\n"
    assert resolve(loaded)[0]["digest"] == resolve(env)[0]["digest"]
    with pytest.raises(FileExistsError, match="pass save_to_directory\\(path, overwrite=True\\)"):
        env.save_to_directory(str(tmp_path / "env"))
    env.python.conda_dependencies.add_pip_package("lp-tiny")
    env.save_to_directory(str(tmp_path / "env"), overwrite=True)
    assert "lp-tiny" in list(Environment.load_from_directory(tmp_path / "env").python.conda_dependencies.pip_packages)
    with pytest.raises(FileNotFoundError, match="azureml_environment.json does not exist"):
        Environment.load_from_directory(str(tmp_path))


def test_an_environment_folder_azures_sdk_wrote_loads(tmp_path):
    """What azureml-core's save_to_directory writes: every section, camelCase keys."""
    definition = {
        "assetId": None,
        "databricks": {"eggLibraries": [], "jarLibraries": [], "mavenLibraries": [], "pypiLibraries": []},
        "docker": {
            "arguments": [],
            "baseDockerfile": None,
            "baseImage": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04",
            "baseImageRegistry": {"address": None, "password": None, "registryIdentity": None, "username": None},
            "buildContext": None,
            "enabled": False,
            "platform": {"architecture": "amd64", "os": "Linux"},
            "sharedVolumes": True,
            "shmSize": None,
        },
        "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"},
        "inferencingStackVersion": None,
        "name": "from-azure",
        "python": {
            "baseCondaEnvironment": None,
            "condaDependenciesFile": None,
            "interpreterPath": "python",
            "userManagedDependencies": False,
        },
        "r": None,
        "spark": {"packages": [], "precachePackages": True, "repositories": []},
        "version": "3",
    }
    (tmp_path / "azureml_environment.json").write_text(json.dumps(definition))
    (tmp_path / "conda_dependencies.yml").write_text("dependencies:\n- python=3.11\n- pip:\n  - six==1.16.0\n")
    env = Environment.load_from_directory(str(tmp_path))
    assert (env.name, env.version, env.python.user_managed_dependencies) == ("from-azure", "3", False)
    assert resolve(env)[0]["requirements"] == ["six==1.16.0"]


def test_from_existing_conda_environment_exports_it_or_says_conda_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserErrorException, match="conda is not installed on this machine .*from_conda_specification"):
        Environment.from_existing_conda_environment(name="myenv", conda_environment_name="mycondaenv")
    conda = tmp_path / "conda"
    conda.write_text(FAKE_CONDA)
    conda.chmod(0o755)
    monkeypatch.setenv("CONDA_EXE", str(conda))
    myenv = Environment.from_existing_conda_environment(name="myenv", conda_environment_name="mycondaenv")
    assert list(myenv.python.conda_dependencies.pip_packages) == ["six==1.16.0"]
    assert myenv.python.conda_dependencies.get_python_version() == "3.11"
    assert resolve(myenv)[0]["requirements"] == ["lp-tiny==1.0.*", "six==1.16.0"]  # conda's =1.0 is 1.0.*
    with pytest.raises(
        UserErrorException, match="conda environment 'nope' does not exist: conda env list has conda, mycondaenv"
    ):
        Environment.from_existing_conda_environment("x", "nope")


FAKE_CONDA = """#!/bin/sh
case "$*" in
  "env list --json") echo '{"envs": ["/opt/conda", "/opt/conda/envs/mycondaenv"]}' ;;
  "env export --no-builds --name mycondaenv")
    printf 'name: mycondaenv\\nchannels:\\n  - defaults\\ndependencies:\\n  - python=3.11\\n  - lp-tiny=1.0\\n'
    printf '  - pip:\\n    - six==1.16.0\\nprefix: /opt/conda/envs/mycondaenv\\n' ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""


def test_build_local_takes_the_sdks_options_and_refuses_an_image_this_machine_cannot_build(ws):
    env = Environment("e")
    with pytest.raises(TypeError, match="unexpected keyword argument 'useDokcer'"):
        env.build_local(ws, useDokcer=True)
    with pytest.raises(
        UsageError, match=r'environment "e" has no Docker image on this machine|no Docker daemon answers'
    ):
        env.build_local(ws, useDocker=True)  # Azure's base image, which no test machine has (docs/docker.md)
    with pytest.raises(UserErrorException, match="builds on this machine"):
        env.build_local(ws, platform="Windows" if sys.platform != "win32" else "Linux")


def test_a_run_configuration_with_node_count_above_one_warns_that_it_changes_nothing(ws, project):
    from localpipe import Pipeline, PythonScriptStep

    project("src/s.py", "print(1)\n")
    config = RunConfiguration()
    config.node_count = 4
    pipeline = Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory=ws.root / "src", runconfig=config)])
    with pytest.warns(UserWarning, match='step "s": node_count 4 changes nothing on one machine'):
        assert pipeline.validate() == []


def test_a_docker_build_context_is_kept_by_register_save_to_directory_and_clone(ws, tmp_path):
    from localpipe.sdk.environment import DockerBuildContext

    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "build.Dockerfile").write_text("FROM scratch\n")
    context = DockerBuildContext.from_local_directory(ws, tmp_path / "ctx", dockerfile_path="build.Dockerfile")
    env = Environment.from_docker_build_context("ctx", context)
    assert env.docker.enabled and env.docker.base_image is None and env.python.user_managed_dependencies
    env.save_to_directory(tmp_path / "saved")
    for copy in (Environment.get(ws, env.register(ws).name), Environment.load_from_directory(tmp_path / "saved"),
                 env.clone("other")):  # fmt: skip
        kept = copy.docker.build_context
        assert kept.location_type is DockerBuildContext.LocationType.StorageAccount
        assert (kept.location, kept.dockerfile_path) == (str(tmp_path / "ctx"), "build.Dockerfile")
    (tmp_path / "ctx" / "data.bin").write_bytes(b"x" * (1024 * 1024))
    with pytest.warns(
        UserWarning, match=r"ctx holds 2 files \(1\.0 MiB\): it is hashed each time a step in it is planned"
    ):
        DockerBuildContext.from_local_directory(ws, tmp_path / "ctx", dockerfile_path="build.Dockerfile")
    with pytest.raises(UserErrorException, match="must be a DockerBuildContext, not str: make one with"):
        Environment.from_docker_build_context("bad", str(tmp_path / "ctx"))


@pytest.mark.parametrize("kept", ["[]", '"text"', "{IDENTITY: 5}", "{IDENTITY: [3, 11]}"])
def test_a_damaged_list_of_pythons_is_asked_again(tmp_path, kept):
    """pythons.json (the versions found, by file identity) that is JSON of another shape was a
    TypeError of every submission that asks for a Python version."""
    from localpipe.envs.pythons import find_pythons

    cache = tmp_path / "pythons.json"
    real = os.path.realpath(sys.executable)
    st = os.stat(real)
    cache.write_text(kept.replace("IDENTITY", json.dumps(f"{real}:{st.st_size}:{st.st_mtime_ns}")))
    found = find_pythons(cache)
    assert found and all(isinstance(version, str) and isinstance(path, str) for version, path in found)
    assert found[0] == (".".join(map(str, sys.version_info[:3])), sys.executable)
    assert isinstance(json.loads(cache.read_text()), dict)


def test_a_password_in_an_index_url_is_warned_about_and_a_variable_in_its_place_is_not(monkeypatch):
    """A token written into --index-url is kept in history.db and in the digest (a new token builds
    the environment again); ${VAR}, which uv and pip expand as they read the requirements, is not."""
    from localpipe.plan.environments import resolve

    def digest(url: str) -> str:
        deps = CondaDependencies.create(pip_packages=["lp-tiny"], pip_indexurl=url)
        env = Environment("private")
        env.python.conda_dependencies = deps
        found: list[str] = []
        resolved = resolve('step "s"', env, None, found, {})
        assert found == []
        return resolved["digest"]

    with pytest.warns(UserWarning, match='environment "private": "--index-url" has a password or token in its URL'):
        digest("https://me:s3cret@pypi.example.com/simple")
    with pytest.warns(UserWarning, match="has a password or token"):
        digest("https://ghp_token@pypi.example.com/simple")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setenv("PIP_TOKEN", "first")
        kept = digest("https://me:${PIP_TOKEN}@pypi.example.com/simple")
        monkeypatch.setenv("PIP_TOKEN", "rotated")
        assert digest("https://me:${PIP_TOKEN}@pypi.example.com/simple") == kept  # expanded as it builds only


def test_a_conda_specifications_variables_are_set_for_its_steps_under_environment_variables(tmp_path):
    """conda sets a specification's ``variables:`` as its environment is activated: they were read
    past without a word."""
    from localpipe.plan.environments import resolve

    spec = tmp_path / "env.yml"
    spec.write_text(
        "name: e\ndependencies:\n  - python\n  - pip:\n    - azureml-defaults\nvariables:\n  MODE: fast\n  THREADS: 4\n"
    )
    env = Environment.from_conda_specification("e", str(spec))
    env.environment_variables = {"MODE": "mine"}
    found: list[str] = []
    assert resolve('step "s"', env, None, found, {})["variables"] == {"MODE": "mine", "THREADS": "4"}
    env.python.user_managed_dependencies = True  # no conda environment is activated: yours runs as it is
    assert resolve('step "s"', env, None, found, {})["variables"] == {"MODE": "mine"}
    spec.write_text("name: e\ndependencies: []\nvariables: [MODE]\n")
    resolve('step "s"', Environment.from_conda_specification("e", str(spec)), None, found, {})
    assert found == ['step "s": environment "e": conda "variables" must map names to values']


def test_the_deprecated_conda_dependencies_file_is_read_into_the_environment(tmp_path, monkeypatch):
    """``env.python.conda_dependencies_file = "env.yml"`` (Azure's older way, which real code sets)
    was an attribute nobody read: the step got no packages."""
    (tmp_path / "env.yml").write_text("name: e\ndependencies:\n  - python=3.11\n  - pip:\n    - lp-tiny==1.0\n")
    monkeypatch.chdir(tmp_path)
    env = Environment("e")
    env.python.conda_dependencies_file = "env.yml"
    assert env.python.conda_dependencies_file == "env.yml"
    assert (list(env.python.conda_dependencies.pip_packages), env.python.conda_dependencies.get_python_version()) == (
        ["lp-tiny==1.0"],
        "3.11",
    )
    with pytest.raises(UserErrorException, match="conda specification missing.yml cannot be read"):
        env.python.conda_dependencies_file = "missing.yml"
