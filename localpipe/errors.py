"""The one exceptions module: every error a user can meet derives from LocalpipeError.

Each message names the thing at fault and what to do about it, in one line.
Outcomes (a step that exits non-zero) are recorded values, never these exceptions.
"""

from __future__ import annotations


class LocalpipeError(Exception):
    """Base class of every localpipe error; ``exit_code`` is what the CLI exits with.

    It is Azure ML's ``azureml.exceptions.AzureMLException`` too, with its constructor (whose
    Azure-service fields are kept as given and otherwise unused, and whose ``**kwargs`` take
    anything, as the SDK's do), ``message``, ``inner_exception`` and ``print_stacktrace()``."""

    exit_code = 1

    def __init__(
        self,
        exception_message: str,
        inner_exception: BaseException | None = None,
        target=None,
        details=None,
        message_format=None,
        message_parameters=None,
        reference_code=None,
        **kwargs,
    ):
        super().__init__(exception_message)
        self._inner_exception = inner_exception
        self.target, self.details, self.reference_code = target, details, reference_code

    @property
    def message(self) -> str:
        """The error's message (as ``str(error)``)."""
        return str(self)

    @property
    def inner_exception(self) -> BaseException | None:
        """The exception this one was raised for: given, or the one being handled when it was raised
        (unless ``raise ... from None`` hid it)."""
        context = None if self.__suppress_context__ else self.__context__
        return self._inner_exception or self.__cause__ or context

    def print_stacktrace(self) -> None:
        """Print the error's traceback on stderr."""
        import traceback

        traceback.print_exception(self)


class UsageError(LocalpipeError):
    """A command line, a pipeline file or an argument the user gave is wrong."""

    exit_code = 2


class PipelineValidationError(UsageError):
    """A pipeline definition has one or more problems; all of them are listed."""

    def __init__(self, problems: list[str], notes: list[str] = ()):
        """``notes`` say what the refusal undid: after the one problem on its line, or one a line."""
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(f"the pipeline is invalid: {'; '.join([self.problems[0], *notes])}")
        else:
            super().__init__(
                f"the pipeline is invalid ({len(self.problems)} problems):\n"
                + "\n".join([*(f"  - {p}" for p in self.problems), *notes])
            )


class UserErrorException(UsageError):
    """Azure ML's name for a wrong value given to the SDK (an environment specification, say)."""

    def __init__(self, exception_message: str, **kwargs):
        super().__init__(exception_message, **kwargs)


class DatasetTimestampMissingError(UserErrorException):
    """Azure ML's error for a time-series filter (``time_before``, ...) on a TabularDataset without
    timestamp columns: never set, or dropped with their column (``azureml.exceptions``)."""

    def __init__(self, error_details: str, **kwargs):
        super().__init__(error_details, **kwargs)


class HyperDriveException(LocalpipeError):
    """Azure ML's base class of HyperDrive's errors (``azureml.train.hyperdrive.exceptions``)."""


class HyperDriveConfigException(HyperDriveException, UsageError):
    """A HyperDrive configuration (a parameter expression, a sampling, a policy, HyperDriveConfig) is wrong."""


class HyperDriveScenarioNotSupportedException(HyperDriveConfigException):
    """A HyperDrive scenario that is not supported (here: Bayesian sampling, estimators, pipelines)."""


class ParallelRunConfigError(UsageError, ValueError):
    """A ParallelRunConfig or ParallelRunStep value that can never work (a ValueError, as Azure ML raises)."""


class PipelineYamlError(UsageError, ValueError):
    """A pipeline or schedule YAML file that is not one (a ValueError, as Azure ML's parser raises)."""


class RunEnvironmentException(LocalpipeError):
    """``Run.get_context(allow_offline=False)`` outside a step (the SDK's exception of that name)."""


class ComputeTargetException(LocalpipeError):
    """Azure ML's ``azureml.exceptions.ComputeTargetException``: ``ComputeTarget(ws, name)`` for a
    target ``ws`` does not have (or has as another kind). Code written for Azure catches it and
    creates the target."""

    exit_code = 2

    def __init__(self, exception_message: str, **kwargs):
        super().__init__(exception_message, **kwargs)


class WebserviceException(LocalpipeError):
    """Azure ML's ``azureml.exceptions.WebserviceException``, which its model registry raises: a model
    that is not registered (the message starts with ``ModelNotFound``, which code written for Azure
    looks for), a bad model name, tags that are not a dict, a file that exists where a model is
    downloaded."""

    exit_code = 2

    def __init__(self, exception_message: str, status_code=None, logger=None, **kwargs):
        super().__init__(exception_message, **kwargs)
        self.status_code = status_code  # the HTTP status of Azure's service; there is no service here


class ModelNotFoundException(LocalpipeError):
    """Azure ML's ``azureml.exceptions.ModelNotFoundException``: ``Model.get_model_path(name)`` for a
    model that neither the workspace nor the local folder has."""

    exit_code = 2

    def __init__(self, exception_message: str, logger=None, **kwargs):
        super().__init__(exception_message, **kwargs)


class ModelPathNotFoundException(UsageError, FileNotFoundError):
    """A model's files are not where ``Model.register`` or ``run.register_model`` was told to find
    them. Azure ML's ``ModelPathNotFoundException`` for a run; a FileNotFoundError too, which the
    SDK's ``Model.register`` raises for a missing path."""

    def __init__(self, exception_message: str, logger=None, **kwargs):
        super().__init__(exception_message, **kwargs)


class PipelineFileError(UsageError):
    """A pipeline file is missing, raises while loading, or does not define exactly one Pipeline."""


class WorkspaceNotFoundError(LocalpipeError):
    """No `.localpipe/` folder was found walking up from a path."""

    exit_code = 2


class NotFoundError(LocalpipeError):
    """A run, step, output or other named record does not exist."""

    exit_code = 2


class ErrorResponseException(NotFoundError):
    """What the SDK's REST client raises when the service answers 404 (a pipeline draft that does
    not exist): ``azureml.pipeline.core._restclients.aeva.models.ErrorResponseException``."""


class StateError(LocalpipeError):
    """history.db or the object store cannot be used as it is (newer schema, not a database, ...)."""


class OutputError(LocalpipeError):
    """What a step wrote as an output cannot be stored (a link leading out of it, a FIFO, ...); the
    step fails with this as its reason."""


class HardwareError(LocalpipeError):
    """A resource (GPU, memory, Docker daemon) was asked for and is not there."""


class RunFailedError(LocalpipeError):
    """``wait_for_completion(raise_on_error=True)`` on a run that did not complete; Azure ML's
    ``azureml.exceptions.ActivityFailedException``, made as that one is, from the error's details."""

    def __init__(self, error_details, **kwargs):
        super().__init__(str(error_details), **kwargs)


class SubmittedWhileLoading(BaseException):
    """Raised by ``Experiment.submit`` in a pipeline file that a command is loading: the command
    runs (or previews, or watches) the pipeline the file submits, under the file's experiment name,
    and the rest of the file is not run. A BaseException so that the file cannot swallow it."""

    def __init__(self, pipeline, experiment: str, parameters: dict | None, options: dict):
        super().__init__(experiment)
        self.pipeline = pipeline
        self.experiment = experiment
        self.parameters = dict(parameters or {})
        self.options = options  # regenerate_outputs, continue_on_step_failure


class LoadTimedOut(BaseException):
    """Raised inside a pipeline file still loading past its time limit. A BaseException, like
    KeyboardInterrupt, so that the file's own ``except Exception`` does not swallow it; the loader
    turns it into a PipelineFileError."""


DAMAGED = "database disk image is malformed"  # SQLite's word for a file whose pages do not hold together


def damaged(exc: Exception, path: object = "history.db") -> str:
    """One line on a history.db that cannot be read (a disk error, a copy cut short) and what to do."""
    return (
        f"{path} is damaged ({exc}): save what SQLite can still read (sqlite3 {path} .recover), then move it "
        "away and run `localpipe init` to start a new one"
    )
