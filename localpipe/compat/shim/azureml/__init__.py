"""The Azure ML SDK v1's ``azureml`` package, answered by localpipe (docs/azureml-imports.md).

On ``sys.path`` only in localpipe's own processes, or in a user's when they opt in with
``PYTHONPATH=$(localpipe azureml-path)``; never installed as a top-level package. Each module of
``localpipe/compat/names.py`` is made on its first import by the finder below, and each of its
names is imported from localpipe on first use: ``from azureml.core import Run`` imports what
``Run`` needs and nothing else. Whatever the table lacks is refused with a message saying so.
"""

import importlib
import sys
from importlib.machinery import ModuleSpec

if sys.version_info < (3, 8):  # noqa: UP036 (a step's Python may be older than localpipe's; say so, not a SyntaxError)
    raise ImportError(
        "localpipe's azureml needs Python 3.8 or later in a step, and this one runs Python {}.{}: name "
        "python=3.8 or later in its environment (docs/environments.md)".format(*sys.version_info[:2])
    )

from localpipe.compat.names import MODULES  # noqa: E402 (after the version check)


def _missing(what: str) -> str:
    return (
        f"localpipe does not provide {what} yet: see the status table in localpipe's README.md "
        "(docs/azureml-imports.md lists the azureml names it provides)"
    )


class _AzuremlFinder:
    """Finds and loads the ``azureml.*`` modules of the table; refuses every other one."""

    @staticmethod
    def find_spec(fullname: str, path=None, target=None):
        if not fullname.startswith("azureml."):
            return None
        if fullname not in MODULES:
            # An ImportError, not a ModuleNotFoundError: `from azureml.core import Model` ends by trying a
            # submodule azureml.core.Model, and the import system swallows a ModuleNotFoundError for that
            # very name, saying only "cannot import name 'Model'" instead of this message.
            raise ImportError(_missing(fullname), name=fullname)
        return ModuleSpec(fullname, _AzuremlFinder, is_package=True)

    @staticmethod
    def create_module(spec):
        return None

    @staticmethod
    def exec_module(module) -> None:
        _fill(module)


def _fill(module) -> None:
    """Give ``module`` its table's names, each imported on first access (a module ``__getattr__``)."""
    name = module.__name__
    names = MODULES[name]

    def __getattr__(attribute: str):
        if attribute in names:
            where, _, value_name = names[attribute].partition(":")
            __import__(where)  # not importlib.import_module: this way `python -X importtime` shows it
            value = getattr(sys.modules[where], value_name)
        elif f"{name}.{attribute}" in MODULES:
            value = importlib.import_module(f"{name}.{attribute}")
        elif attribute.startswith("_"):  # probes of tools (__wrapped__, _repr_html_): the usual answer
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
        else:
            raise AttributeError(_missing(f"{name}.{attribute}"))
        setattr(module, attribute, value)
        return value

    module.__all__ = sorted(names)
    module.__getattr__ = __getattr__
    module.__dir__ = lambda: sorted({*vars(module), *names})


sys.meta_path[:] = [finder for finder in sys.meta_path if getattr(finder, "__name__", "") != "_AzuremlFinder"]
sys.meta_path.insert(0, _AzuremlFinder)
_fill(sys.modules[__name__])
