"""Hyperparameter tuning declarations, as ``azureml.train.hyperdrive`` has them (docs/hyperdrive.md).

Parameter expressions (``choice``, ``uniform``, ...) are the SDK's plain lists (``["uniform", [0, 1]]``);
a sampling holds a parameter space of them, a policy its configuration; ``HyperDriveConfig`` puts a
``ScriptRunConfig`` together with them. Each is checked when made, with the SDK's exception classes
and one line naming the value at fault. Sampling the trials and applying a policy are pure
functions of ``plan/sweep.py``; a submission runs them (``client/hyperdrive.py``).
"""

from __future__ import annotations

import enum
import json
import math
import numbers
import warnings
from pathlib import Path

from localpipe.errors import HyperDriveConfigException, HyperDriveScenarioNotSupportedException
from localpipe.sdk.script_run import ScriptRunConfig
from localpipe.sdk.steps import PythonScriptStep

MAX_DURATION_MINUTES = 10080  # the SDK's default and its service's limit: a week
BAYESIAN_RUNS_PER_PARAMETER, BAYESIAN_MAX_CONCURRENT_RUNS = 20, 20  # below, above: the SDK warns


# -- parameter expressions ---------------------------------------------------------------------
def choice(*options):
    """One of ``options`` (values, or one list or range of them)."""
    if not options:
        raise HyperDriveConfigException("choice() needs at least one option: choice(1, 2, 3) or choice([1, 2, 3])")
    if len(options) == 1 and isinstance(options[0], (list, range)):
        if not options[0]:
            raise HyperDriveConfigException("choice() was given an empty list: give at least one option")
        return ["choice", [list(options[0])]]
    if any(isinstance(option, (list, range)) for option in options):
        raise HyperDriveConfigException("choice() takes values, or one list of them, not several lists")
    return ["choice", [list(options)]]


def randint(upper):
    """An integer in ``[0, upper)``."""
    if not isinstance(upper, int) or isinstance(upper, bool) or upper <= 0:
        raise HyperDriveConfigException(f"randint(upper={upper!r}): upper must be an int above 0")
    return ["randint", [upper]]


def uniform(min_value, max_value):
    """A float uniformly between ``min_value`` and ``max_value``."""
    _numbers("uniform", min_value=min_value, max_value=max_value)
    _ordered("uniform", min_value, max_value, strict=True)
    return ["uniform", [min_value, max_value]]


def quniform(min_value, max_value, q):
    """``round(uniform(min_value, max_value) / q) * q``."""
    _numbers("quniform", min_value=min_value, max_value=max_value)
    _step("quniform", q)
    _ordered("quniform", min_value, max_value, strict=True)
    return ["quniform", [min_value, max_value, q]]


def loguniform(min_value, max_value):
    """``exp(uniform(min_value, max_value))``: its logarithm is uniform (the bounds are logarithms)."""
    _numbers("loguniform", min_value=min_value, max_value=max_value)
    _ordered("loguniform", min_value, max_value, strict=False)
    return ["loguniform", [min_value, max_value]]


def qloguniform(min_value, max_value, q):
    """``round(exp(uniform(min_value, max_value)) / q) * q``."""
    _numbers("qloguniform", min_value=min_value, max_value=max_value)
    _step("qloguniform", q)
    _ordered("qloguniform", min_value, max_value, strict=False)
    return ["qloguniform", [min_value, max_value, q]]


def normal(mu, sigma):
    """A float from the normal distribution of mean ``mu`` and standard deviation ``sigma``."""
    _numbers("normal", mu=mu, sigma=sigma)
    _spread("normal", sigma)
    return ["normal", [mu, sigma]]


def qnormal(mu, sigma, q):
    """``round(normal(mu, sigma) / q) * q``."""
    _numbers("qnormal", mu=mu, sigma=sigma)
    _step("qnormal", q)
    _spread("qnormal", sigma)
    return ["qnormal", [mu, sigma, q]]


def lognormal(mu, sigma):
    """``exp(normal(mu, sigma))``."""
    _numbers("lognormal", mu=mu, sigma=sigma)
    _spread("lognormal", sigma)
    return ["lognormal", [mu, sigma]]


def qlognormal(mu, sigma, q):
    """``round(exp(normal(mu, sigma)) / q) * q``."""
    _numbers("qlognormal", mu=mu, sigma=sigma)
    _step("qlognormal", q)
    _spread("qlognormal", sigma)
    return ["qlognormal", [mu, sigma, q]]


def _numbers(expression: str, **values) -> None:
    for name, value in values.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise HyperDriveConfigException(f"{expression}({name}={value!r}): {name} must be an int or a float")
        if not math.isfinite(value):  # its draws would be nan or inf, which no proposal can weigh
            raise HyperDriveConfigException(f"{expression}({name}={value!r}): {name} must be a finite number")


def _step(expression: str, q) -> None:
    if not (isinstance(q, int) and not isinstance(q, bool)) and not (isinstance(q, float) and q.is_integer()):
        raise HyperDriveConfigException(
            f"{expression}(q={q!r}): q must be a whole number (an int, or a float like 2.0)"
        )


def _ordered(expression: str, low, high, strict: bool) -> None:
    if low > high or (strict and low == high):
        relation = "below" if strict else "at most"
        raise HyperDriveConfigException(
            f"{expression}(min_value={low!r}, max_value={high!r}): min_value must be {relation} max_value"
        )
    if not math.isfinite(high - low):
        raise HyperDriveConfigException(
            f"{expression}(min_value={low!r}, max_value={high!r}): too wide a range for a float: narrow it"
        )


def _spread(expression: str, sigma) -> None:
    if sigma < 0:
        raise HyperDriveConfigException(f"{expression}(sigma={sigma!r}): sigma must not be negative")


# -- sampling ----------------------------------------------------------------------------------
class HyperParameterSampling:
    """A parameter space (name -> expression) and how to sample it."""

    SAMPLING_NAME: str = ""
    _supported: frozenset[str] | None = None  # the expressions this sampling takes (None: every one)

    def __init__(self, sampling_method_name, parameter_space, properties=None, supported_distributions=None,
                 distributions_validators=None):  # fmt: skip
        if not isinstance(parameter_space, dict) or not parameter_space:
            raise HyperDriveConfigException(
                f"{type(self).__name__}(parameter_space={parameter_space!r}): give a dict of parameter names "
                "to expressions, such as {'--lr': uniform(0.001, 0.1)}"
            )
        self._sampling_method_name = sampling_method_name
        self._parameter_space = parameter_space
        self._properties = properties
        for name, expression in parameter_space.items():
            _check_expression(type(self).__name__, name, expression, supported_distributions)

    def to_json(self) -> dict:
        """The sampling as the SDK writes it: ``{"name", "parameter_space"[, "properties"]}``."""
        definition = {"name": self._sampling_method_name, "parameter_space": self._parameter_space}
        if self._properties:
            definition["properties"] = self._properties
        return definition

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._parameter_space!r})"


def _check_expression(sampling: str, name, expression, supported) -> None:
    if not isinstance(name, str) or not name.strip("-"):
        raise HyperDriveConfigException(f"{sampling}: parameter name {name!r} must be a non-empty string")
    if not (isinstance(expression, list) and len(expression) == 2 and isinstance(expression[1], list)):
        raise HyperDriveConfigException(
            f"{sampling}: parameter {name!r} is {expression!r}: give an expression such as choice(...) or uniform(...)"
        )
    if supported is not None and expression[0] not in supported:
        raise HyperDriveConfigException(
            f"{sampling}: parameter {name!r} uses {expression[0]}, which it does not take: use "
            f"{', '.join(sorted(supported))}"
        )
    if expression[0] == "choice":
        values = expression[1][0] if expression[1] else []
        if not values or any(type(value) not in (int, str, float) for value in values):
            raise HyperDriveConfigException(
                f"{sampling}: choice values of {name!r} should be 'int', 'string' or 'float' (got {values!r})"
            )
        strings = sum(isinstance(value, str) for value in values)
        if strings not in (0, len(values)):
            raise HyperDriveConfigException(
                f"{sampling}: either all or none of the choice values of {name!r} should be 'str' type"
            )


class RandomParameterSampling(HyperParameterSampling):
    """Values drawn at random from each expression; ``properties={"rndseed": N}`` fixes the draw, as in
    Azure ML (without it, a seed is drawn and recorded with the run)."""

    SAMPLING_NAME = "RANDOM"

    def __init__(self, parameter_space, properties=None):
        super().__init__(RandomParameterSampling.SAMPLING_NAME, parameter_space, properties)
        _check_seed("RandomParameterSampling", properties)


class GridParameterSampling(HyperParameterSampling):
    """Every combination of the values of ``choice`` expressions (the only kind it takes, as in the SDK)."""

    SAMPLING_NAME = "GRID"

    def __init__(self, parameter_space, properties=None):
        super().__init__(GridParameterSampling.SAMPLING_NAME, parameter_space, properties, frozenset({"choice"}))


class BayesianParameterSampling(HyperParameterSampling):
    """Each trial after the first few proposed from the results of those that ended (Tree-structured
    Parzen Estimator, ``plan/bayes.py``); ``choice``, ``uniform`` and ``quniform`` only, and no early
    termination policy, as in the SDK. ``properties={"rndseed": N}`` fixes the random draws."""

    SAMPLING_NAME = "BayesianOptimization"

    def __init__(self, parameter_space, properties=None):
        super().__init__(
            BayesianParameterSampling.SAMPLING_NAME,
            parameter_space,
            properties,
            frozenset({"choice", "uniform", "quniform"}),
        )
        _check_seed("BayesianParameterSampling", properties)
        for name, (kind, args) in parameter_space.items():
            if kind != "quniform":
                continue
            if any(type(value) is not int for value in args):
                raise HyperDriveConfigException(
                    f"BayesianParameterSampling: quniform{tuple(args)} of {name!r}: expected quniform arguments "
                    "to be int"
                )
            if (args[1] - args[0]) / args[2] > QUNIFORM_POINTS:
                raise HyperDriveConfigException(
                    f"BayesianParameterSampling: quniform{tuple(args)} of {name!r}: too many discrete points for "
                    "quniform distribution: use a larger q, or uniform"
                )


QUNIFORM_POINTS = 100_000  # the SDK's limit on a Bayesian quniform's points


def _check_seed(sampling: str, properties) -> None:
    seed = (properties or {}).get("rndseed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise HyperDriveConfigException(f"{sampling}: properties['rndseed'] is {seed!r}: give an int")


# -- early termination policies ----------------------------------------------------------------
class EarlyTerminationPolicy:
    """A rule that ends trials whose primary metric falls behind; applied each time a trial logs it."""

    POLICY_NAME: str = ""

    def __init__(self, name, properties=None):
        self._name = name
        self._properties = properties

    def to_json(self) -> dict:
        """The policy as the SDK writes it: ``{"name", "properties"}``."""
        return {"name": self._name, "properties": self._properties}

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._properties or ''})"


class _IntervalPolicy(EarlyTerminationPolicy):
    """A policy applied at every ``evaluation_interval``-th logging from ``delay_evaluation`` on."""

    def __init__(self, name, evaluation_interval, delay_evaluation, config: dict):
        policy = type(self).__name__
        for key, value in (("evaluation_interval", evaluation_interval), ("delay_evaluation", delay_evaluation)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise HyperDriveConfigException(f"{policy}({key}={value!r}): {key} must be an int")
        if evaluation_interval < 1 or delay_evaluation < 0:
            raise HyperDriveConfigException(
                f"{policy}(evaluation_interval={evaluation_interval}, delay_evaluation={delay_evaluation}): "
                "evaluation_interval must be 1 or more, delay_evaluation 0 or more"
            )
        super().__init__(
            name, {"evaluation_interval": evaluation_interval, "delay_evaluation": delay_evaluation, **config}
        )
        self._evaluation_interval = evaluation_interval
        self._delay_evaluation = delay_evaluation

    @property
    def evaluation_interval(self) -> int:
        """How often (in loggings of the primary metric) the policy is applied."""
        return self._evaluation_interval

    @property
    def delay_evaluation(self) -> int:
        """The interval before which the policy is not applied."""
        return self._delay_evaluation


class BanditPolicy(_IntervalPolicy):
    """End a trial whose best primary metric is not within ``slack_factor`` (a ratio) or
    ``slack_amount`` (an absolute distance) of the best trial's at the same interval."""

    POLICY_NAME = "Bandit"

    def __init__(self, evaluation_interval=1, slack_factor=None, slack_amount=None, delay_evaluation=0):
        if (slack_factor is None and slack_amount is None) or (slack_factor and slack_amount):
            raise HyperDriveConfigException(
                "BanditPolicy needs exactly one of slack_factor and slack_amount: e.g. BanditPolicy(slack_factor=0.1)"
            )
        slack = "slack_factor" if slack_factor else "slack_amount"
        value = slack_factor if slack_factor else slack_amount
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or value < 0:
            raise HyperDriveConfigException(f"BanditPolicy({slack}={value!r}): {slack} must be a number, 0 or more")
        super().__init__(BanditPolicy.POLICY_NAME, evaluation_interval, delay_evaluation, {slack: value})
        self._slack_factor = slack_factor

    @property
    def slack_factor(self):
        """The slack allowed as a ratio of the best trial's metric (None when ``slack_amount`` is given)."""
        return self._slack_factor


class MedianStoppingPolicy(_IntervalPolicy):
    """End a trial whose best primary metric up to interval N is worse than the median of the
    running averages (intervals 1 to N) of every trial that reached N."""

    POLICY_NAME = "MedianStopping"

    def __init__(self, evaluation_interval=1, delay_evaluation=0):
        super().__init__(MedianStoppingPolicy.POLICY_NAME, evaluation_interval, delay_evaluation, {})


class TruncationSelectionPolicy(_IntervalPolicy):
    """At each evaluation interval N, end the trials among the lowest ``truncation_percentage`` percent
    (by their best primary metric up to N, among the trials that reached N)."""

    POLICY_NAME = "TruncationSelection"

    def __init__(self, truncation_percentage, evaluation_interval=1, delay_evaluation=0):
        if not isinstance(truncation_percentage, int) or isinstance(truncation_percentage, bool):
            raise HyperDriveConfigException(
                f"TruncationSelectionPolicy(truncation_percentage={truncation_percentage!r}): give an int"
            )
        if not 1 <= truncation_percentage <= 99:
            raise HyperDriveConfigException(
                f"TruncationSelectionPolicy(truncation_percentage={truncation_percentage}): it must be between 1 and 99"
            )
        config = {"truncation_percentage": truncation_percentage, "exclude_finished_jobs": False}
        super().__init__(TruncationSelectionPolicy.POLICY_NAME, evaluation_interval, delay_evaluation, config)
        self._truncation_percentage = truncation_percentage

    @property
    def truncation_percentage(self) -> int:
        """The percentage of the lowest trials ended at each evaluation."""
        return self._truncation_percentage


class NoTerminationPolicy(EarlyTerminationPolicy):
    """Every trial runs to its end."""

    POLICY_NAME = "Default"

    def __init__(self):
        super().__init__(NoTerminationPolicy.POLICY_NAME)


class PrimaryMetricGoal(enum.Enum):
    """Whether the primary metric is to be maximized or minimized."""

    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"

    @staticmethod
    def from_str(goal):
        """The goal named ``goal`` (case ignored)."""
        for member in PrimaryMetricGoal:
            if str(goal).lower() == member.name.lower():
                return member
        raise HyperDriveConfigException(f"Unknown goal '{goal}': use PrimaryMetricGoal.MAXIMIZE or MINIMIZE")


# -- the configuration -------------------------------------------------------------------------
class HyperDriveConfig:
    """A sweep: ``run_config`` (a ScriptRunConfig) run once per sampled set of hyperparameters, each
    appended to its arguments (``--lr 0.01``), ``max_concurrent_runs`` at once, ended early by
    ``policy``, and the trials compared on ``primary_metric_name``."""

    def __init__(self, hyperparameter_sampling, primary_metric_name, primary_metric_goal, max_total_runs,
                 max_concurrent_runs=None, max_duration_minutes=MAX_DURATION_MINUTES, policy=None, estimator=None,
                 run_config=None, resume_from=None, resume_child_runs=None, pipeline=None, debug_flag=None,
                 custom_run_id=None):  # fmt: skip
        """As in the SDK, exactly one of ``estimator``, ``run_config`` and ``pipeline`` is given; only
        ``run_config`` is built here (estimators are deprecated in the SDK; a pipeline sweep, and
        resuming trials with ``resume_child_runs``, are refused in one line). ``resume_from``, one
        HyperDriveRun or up to five, warm-starts the sweep with their trials (``_warm_start``)."""
        given = [n for n, v in (("estimator", estimator), ("run_config", run_config), ("pipeline", pipeline)) if v]
        if len(given) != 1:
            raise HyperDriveConfigException(
                f"HyperDriveConfig needs exactly one of estimator, run_config, pipeline (got "
                f"{', '.join(given) or 'none'}): pass run_config=ScriptRunConfig(...)"
            )
        if given != ["run_config"]:
            raise HyperDriveScenarioNotSupportedException(
                f"HyperDriveConfig({given[0]}=...) is not built in localpipe: pass run_config=ScriptRunConfig(...)"
            )
        if not isinstance(run_config, ScriptRunConfig):
            raise HyperDriveConfigException(
                f"HyperDriveConfig(run_config={run_config!r}): run_config must be a ScriptRunConfig"
            )
        if run_config.command:
            raise HyperDriveConfigException(
                "HyperDriveConfig: run_config runs a command; a sweep appends its values to a script's "
                "arguments: give ScriptRunConfig(script=...)"
            )
        if resume_child_runs:
            raise HyperDriveScenarioNotSupportedException(
                "HyperDriveConfig(resume_child_runs=...): resuming trials is not built in localpipe yet: drop "
                "resume_child_runs (resume_from warm-starts a sweep with earlier sweeps' results)"
            )
        if not isinstance(hyperparameter_sampling, HyperParameterSampling):
            raise HyperDriveConfigException(
                f"HyperDriveConfig(hyperparameter_sampling={hyperparameter_sampling!r}): give a "
                "RandomParameterSampling, GridParameterSampling or BayesianParameterSampling"
            )
        if not isinstance(primary_metric_name, str) or not primary_metric_name:
            raise HyperDriveConfigException(
                f"HyperDriveConfig(primary_metric_name={primary_metric_name!r}): name the metric the script logs"
            )
        if not isinstance(primary_metric_goal, PrimaryMetricGoal):
            raise HyperDriveConfigException(
                f"HyperDriveConfig(primary_metric_goal={primary_metric_goal!r}): give PrimaryMetricGoal.MAXIMIZE "
                "or PrimaryMetricGoal.MINIMIZE"
            )
        _positive("max_total_runs", max_total_runs)
        if max_concurrent_runs is not None:
            _positive("max_concurrent_runs", max_concurrent_runs)
        if not isinstance(max_duration_minutes, numbers.Real) or max_duration_minutes <= 0:
            raise HyperDriveConfigException(
                f"HyperDriveConfig(max_duration_minutes={max_duration_minutes!r}): give a number of minutes above 0"
            )
        if isinstance(hyperparameter_sampling, BayesianParameterSampling) and not isinstance(
            policy, (NoTerminationPolicy, type(None))
        ):
            raise HyperDriveScenarioNotSupportedException(
                "No early termination policy is currently supported with Bayesian sampling. "
                f"'{type(policy).__name__}' was provided: drop policy (or give NoTerminationPolicy())"
            )
        policy = NoTerminationPolicy() if policy is None else policy
        if not isinstance(policy, EarlyTerminationPolicy):
            raise HyperDriveConfigException(
                f"HyperDriveConfig(policy={policy!r}): give a BanditPolicy, MedianStoppingPolicy, "
                "TruncationSelectionPolicy or NoTerminationPolicy"
            )
        self._run_config = run_config
        self._estimator = None
        self._pipeline = None
        self._debug_flag = debug_flag
        self._custom_run_id = custom_run_id
        self._policy_config = policy.to_json()
        self._generator_config = hyperparameter_sampling.to_json()
        self._primary_metric_config = {"name": primary_metric_name, "goal": primary_metric_goal.name.lower()}
        self._max_total_runs = max_total_runs
        self._max_concurrent_runs = max_concurrent_runs or max_total_runs
        if max_duration_minutes > MAX_DURATION_MINUTES:  # the SDK's warning and limit
            warnings.warn(
                f"The experiment maximum duration provided exceeds the service limit of {MAX_DURATION_MINUTES} "
                f"minutes. The maximum duration will be overridden with {MAX_DURATION_MINUTES} minutes.",
                UserWarning,
                stacklevel=2,
            )
        self._max_duration_minutes = min(max_duration_minutes, MAX_DURATION_MINUTES)
        self._warm_start = _warm_start(resume_from, self) if resume_from else None
        if isinstance(hyperparameter_sampling, BayesianParameterSampling):  # the SDK's advice, in its words
            recommended = BAYESIAN_RUNS_PER_PARAMETER * len(hyperparameter_sampling._parameter_space)
            if max_total_runs < recommended:
                warnings.warn(
                    "For best results with Bayesian Sampling we recommend using a maximum number of runs greater "
                    f"than or equal to {BAYESIAN_RUNS_PER_PARAMETER} times the number of hyperparameters being "
                    f"tuned. Recommendend value:{recommended}.",
                    UserWarning,
                    stacklevel=2,
                )
            if self._max_concurrent_runs > BAYESIAN_MAX_CONCURRENT_RUNS:
                warnings.warn(
                    f"We recommend using {BAYESIAN_MAX_CONCURRENT_RUNS} max concurrent runs or fewer when using "
                    "Bayesian sampling since a higher number might not provide the best result.",
                    UserWarning,
                    stacklevel=2,
                )
            if 1 < max_total_runs <= self._max_concurrent_runs:  # localpipe's own: a proposal would wait for
                warnings.warn(  # all but the max_concurrent_runs - 1 trials before it, so there is none to make
                    f"HyperDriveConfig: with Bayesian sampling and max_concurrent_runs of {self._max_concurrent_runs} "
                    f"(all {max_total_runs} at once) no trial can learn from another, so every trial is random: give "
                    "max_concurrent_runs below max_total_runs (fewer lets each proposal see more results)",
                    UserWarning,
                    stacklevel=2,
                )

    @property
    def estimator(self):
        """None: estimators are not built here."""
        return self._estimator

    @property
    def run_config(self) -> ScriptRunConfig:
        """The ScriptRunConfig each trial runs."""
        return self._run_config

    @property
    def pipeline(self):
        """None: pipeline sweeps are not built here."""
        return self._pipeline

    @property
    def source_directory(self):
        """The run configuration's source directory."""
        return self._run_config.source_directory

    def sweep(self) -> dict:
        """What planning and the scheduler need of the sweep, as plain data (``warm_start``: the runs
        it resumes from and their trials, each ``[values as pairs, the primary metric logged]``)."""
        sweep = {
            "generator_config": self._generator_config,
            "policy_config": self._policy_config,
            "primary_metric_config": self._primary_metric_config,
            "max_total_runs": self._max_total_runs,
            "max_concurrent_runs": self._max_concurrent_runs,
            "max_duration_minutes": self._max_duration_minutes,
        }
        return {**sweep, "warm_start": self._warm_start} if self._warm_start else sweep

    def __repr__(self) -> str:
        return (
            f"HyperDriveConfig({self._generator_config['name']}, primary_metric={self._primary_metric_config}, "
            f"max_total_runs={self._max_total_runs})"
        )


MAX_PARENT_RUNS, RESUME_FROM_TOTAL_RUNS = 5, 1000  # the SDK's limits on resume_from


def _warm_start(resume_from, config: HyperDriveConfig) -> dict:
    """The HyperDrive runs ``resume_from`` names (one, or a list), checked as the SDK checks them,
    and their trials: ``{"runs": [ids], "trials": [[values as pairs, the primary metric logged]]}``.
    Bayesian sampling proposes from those trials as from its own; an early-termination policy
    compares with them too; the best run may be one of them (``get_best_run_by_primary_metric``)."""
    parents = list(resume_from) if isinstance(resume_from, (list, tuple)) else [resume_from]
    problem = None
    if len(parents) > MAX_PARENT_RUNS:
        problem = f"at most {MAX_PARENT_RUNS} runs (got {len(parents)})"
    elif any(getattr(run, "type", None) != "hyperdrive" for run in parents):
        problem = "each must be a HyperDriveRun (Experiment.submit(HyperDriveConfig(...)), or Run.get(ws, id) of one)"
    elif len({run.id for run in parents}) < len(parents):
        problem = "it names a run twice"
    if problem:
        raise HyperDriveConfigException(f"HyperDriveConfig(resume_from=...): {problem}")
    metric = config._primary_metric_config
    total, trials = config._max_total_runs, []
    for run in parents:
        tags = run.get_tags()
        theirs = json.loads(tags["primary_metric_config"])
        for key in ("name", "goal"):
            if theirs[key] != metric[key]:
                raise HyperDriveConfigException(
                    f"HyperDriveConfig(resume_from=...): run {run.id}'s primary metric {key} is {theirs[key]!r}, "
                    f"this sweep's {metric[key]!r}: warm-start from sweeps of the same metric and goal"
                )
        space = json.loads(tags["generator_config"])["parameter_space"]
        if config._generator_config["name"] == BayesianParameterSampling.SAMPLING_NAME and json.dumps(
            space, sort_keys=True
        ) != json.dumps(config._generator_config["parameter_space"], sort_keys=True):
            raise HyperDriveConfigException(
                f"HyperDriveConfig(resume_from=...): run {run.id}'s parameter space is not this Bayesian "
                "sampling's: warm-start Bayesian sampling from sweeps of the same space"
            )
        if run.get_status() not in ("Completed", "Canceled"):
            raise HyperDriveConfigException(
                f"HyperDriveConfig(resume_from=...): run {run.id} is {run.get_status()}: all resume_from runs "
                "should be completed or canceled"
            )
        total += int(tags["max_total_jobs"])
        values = run.get_hyperparameters()
        for child in run.get_children():
            if child.id in values:
                logged = child.get_metrics(metric["name"]).get(metric["name"], [])
                series = [v for v in (logged if isinstance(logged, list) else [logged]) if is_metric_value(v)]
                trials.append([list(json.loads(values[child.id]).items()), series])
    if total > RESUME_FROM_TOTAL_RUNS:
        raise HyperDriveConfigException(
            f"HyperDriveConfig(resume_from=...): the number of total runs should not be greater than "
            f"{RESUME_FROM_TOTAL_RUNS} (max_total_runs of this sweep and of the runs it resumes from: {total})"
        )
    return {"runs": [run.number for run in parents], "trials": trials}


def is_metric_value(value) -> bool:
    """Whether a logged value counts as a primary metric's: a number, not a bool, not NaN (no rank)
    nor an infinity; an int of any size is finite (``math.isfinite`` cannot take one beyond a float)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (isinstance(value, int) or math.isfinite(value))
    )


def _positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise HyperDriveConfigException(f"HyperDriveConfig({name}={value!r}): {name} must be an int above 0")


# -- a sweep as a pipeline's step --------------------------------------------------------------
OUTPUTS_SCRIPT = Path(__file__).parent / "sweep_outputs" / "hyperdrive_outputs.py"


class TrainingOutput:
    """What a HyperDriveStep's output holds: ``"Metrics"`` (every trial's metrics as JSON) or ``"Model"``
    (``model_file``, a path among the best trial's files, such as ``outputs/model.pkl``)."""

    def __init__(self, type, iteration=None, metric=None, model_file=None):
        if str(type).lower() == "metrics":
            if iteration or metric:
                raise ValueError("Iteration and metric shouldn't be provided for output type: Metrics")
        elif str(type).lower() == "model":
            if iteration and metric:
                raise ValueError("Both iteration and metric cannot be provided for output type: Model")
        else:
            raise ValueError(f"TrainingOutput type {type!r} is unknown: use 'Metrics' or 'Model'")
        self._type, self._iteration, self._metric, self._model_file = type, iteration, metric, model_file

    type = property(lambda self: self._type, doc="'Metrics' or 'Model'.")
    iteration = property(lambda self: self._iteration, doc="An AutoML iteration (no meaning for HyperDrive).")
    metric = property(lambda self: self._metric, doc="An AutoML metric (no meaning for HyperDrive).")
    model_file = property(lambda self: self._model_file, doc="The best trial's file the Model output holds.")


class HyperDriveStep(PythonScriptStep):
    """A sweep as a step of a pipeline: its trials run in the pipeline's run (steps ``NAME_HD_0``, ...),
    then this step writes its outputs, each a PipelineData with a ``TrainingOutput``: ``"Metrics"``
    (also ``metrics_output``) and ``"Model"`` (the best trial's ``model_file``), which later steps read."""

    def __init__(self, name, hyperdrive_config, estimator_entry_script_arguments=None, inputs=None, outputs=None,
                 metrics_output=None, allow_reuse=True, version=None):  # fmt: skip
        """``inputs`` and ``estimator_entry_script_arguments`` (or the ScriptRunConfig's arguments, not
        both, as in the SDK) are every trial's; ``allow_reuse`` and ``version`` are the trials'."""
        if not isinstance(name, str):
            raise ValueError("name must be a string")
        if not isinstance(hyperdrive_config, HyperDriveConfig):
            raise ValueError(f"Unexpected hyperdrive_config type: {type(hyperdrive_config)}: give a HyperDriveConfig")
        arguments = hyperdrive_config.run_config.arguments
        if estimator_entry_script_arguments is not None and arguments:
            raise ValueError(
                "Only one of estimator_entry_script_arguments and ScriptRunConfig.arguments should be set."
            )
        if estimator_entry_script_arguments is not None and not isinstance(estimator_entry_script_arguments, list):
            raise ValueError("estimator_entry_script_arguments expects arguments as a list.")
        outputs = list(outputs or [])
        if metrics_output is not None:
            metrics_output._training_output = TrainingOutput("Metrics")
            outputs.append(metrics_output)
        collected = ["--trials", "", "--metric", hyperdrive_config._primary_metric_config["name"],
                     "--goal", hyperdrive_config._primary_metric_config["goal"]]  # fmt: skip
        for output in outputs:
            training = getattr(output, "training_output", None)
            if not isinstance(training, TrainingOutput):
                raise ValueError(
                    f'HyperDriveStep "{name}": output {getattr(output, "name", output)!r} has no TrainingOutput: give '
                    'PipelineData(..., training_output=TrainingOutput("Metrics")) or '
                    'TrainingOutput("Model", model_file=...)'
                )
            output.is_directory = False  # the metrics' JSON, or the model file itself, as in Azure ML
            if training.type.lower() == "metrics":
                collected += ["--metrics-output", output]
            elif not training.model_file:
                raise ValueError(f'HyperDriveStep "{name}": TrainingOutput("Model") needs model_file="outputs/..."')
            else:
                collected += ["--model-output", output, "--model-file", training.model_file]
        super().__init__(
            OUTPUTS_SCRIPT.name, name=name, arguments=collected, source_directory=str(OUTPUTS_SCRIPT.parent),
            inputs=inputs,  # its trials': listed here too, so that the pipeline pulls in their producers
            allow_reuse=False,  # it reads its trials, which are no input of it: it looks at them each run
        )  # fmt: skip
        self._hyperdrive_config = hyperdrive_config
        self.trial_arguments = list(estimator_entry_script_arguments or [])
        self.trial_inputs = list(inputs or [])
        self.trial_allow_reuse = allow_reuse
        self.trial_version = version
        self.trial_steps: list = []  # made when the pipeline is planned (plan/sweep.py), once
        self.sweep: dict | None = None

    @property
    def hyperdrive_config(self) -> HyperDriveConfig:
        """The sweep's configuration."""
        return self._hyperdrive_config
