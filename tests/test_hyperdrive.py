"""Hyperparameter sweeps (docs/hyperdrive.md): ``azureml.train.hyperdrive``'s expressions, samplings,
policies and ``HyperDriveConfig``, submitted as real runs whose trials are a tiny script logging a
metric that is a known function of its arguments."""

from __future__ import annotations

import copy
import json
import math
import statistics

import pytest
from starlette.testclient import TestClient

from localpipe import (
    BanditPolicy,
    BayesianParameterSampling,
    Experiment,
    GridParameterSampling,
    HyperDriveConfig,
    HyperDriveRun,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    PrimaryMetricGoal,
    RandomParameterSampling,
    Run,
    ScriptRunConfig,
    TruncationSelectionPolicy,
    choice,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from localpipe.errors import HyperDriveConfigException, HyperDriveScenarioNotSupportedException, UserErrorException
from localpipe.plan.sweep import proposal, proposal_waits, ranked_trials, sample, to_stop
from localpipe.studio.app import create_app
from tests.conftest import wait_for
from tests.test_resources import overlaps

TRAIN = """
import argparse, json, os, time
from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--y", type=float, default=1.0)
parser.add_argument("--copy", type=int, default=0)
parser.add_argument("--iterations", type=int, default=1)
parser.add_argument("--pause", type=float, default=0.0)
args = parser.parse_args()
run = Run.get_context()
for _ in range(args.iterations):
    run.log("score", args.x * args.y)
    time.sleep(args.pause)
os.makedirs("outputs", exist_ok=True)
with open("outputs/args.json", "w") as f:
    json.dump(vars(args), f)
"""


def _config(ws, project, space, *, sampling=GridParameterSampling, policy=None, concurrent=2, total=8,
            goal=PrimaryMetricGoal.MAXIMIZE, arguments=(), **extra):  # fmt: skip
    project("src/train.py", TRAIN)
    src = ScriptRunConfig(source_directory=str(ws.root / "src"), script="train.py", arguments=list(arguments))
    return HyperDriveConfig(
        run_config=src,
        hyperparameter_sampling=sampling(space),
        primary_metric_name="score",
        primary_metric_goal=goal,
        max_total_runs=total,
        max_concurrent_runs=concurrent,
        policy=policy,
        **extra,
    )


def _statuses(run) -> dict[str, tuple[str, str | None]]:
    return {s["name"]: (s["status"], s["reason"]) for s in run.get_details()["steps"]}


# -- sampling ----------------------------------------------------------------------------------
def test_random_sampling_gives_each_expression_its_kind_and_range_and_a_seed_repeats_the_draw():
    space = {
        "c": choice("a", "b", "c"), "r": randint(5), "u": uniform(-1, 2), "qu": quniform(0, 10, 2),
        "lu": loguniform(-3, 1), "qlu": qloguniform(0, 3, 1), "n": normal(10, 2), "qn": qnormal(0, 5, 3),
        "ln": lognormal(0, 1), "qln": qlognormal(1, 0.5, 1),
    }  # fmt: skip
    config = RandomParameterSampling(space, properties={"rndseed": 7}).to_json()
    trials = sample(config, 300, seed=7)
    assert len(trials) == 300
    column = {name: [t[name] for t in trials] for name in space}
    assert set(column["c"]) == {"a", "b", "c"}
    assert all(isinstance(v, int) for v in column["r"]) and set(column["r"]) == set(range(5))
    assert all(isinstance(v, float) and -1 <= v <= 2 for v in column["u"])
    assert set(column["qu"]) <= {0, 2, 4, 6, 8, 10} and len(set(column["qu"])) >= 5
    assert all(math.exp(-3) <= v <= math.exp(1) for v in column["lu"])
    assert all(v == round(v) and 0 <= v <= round(math.exp(3)) for v in column["qlu"])
    assert 9 < statistics.fmean(column["n"]) < 11 and 1.5 < statistics.stdev(column["n"]) < 2.5
    assert all(v % 3 == 0 for v in column["qn"]) and min(column["qn"]) < 0 < max(column["qn"])
    assert all(v > 0 for v in column["ln"]) and 0.7 < statistics.median(column["ln"]) < 1.4  # median e^0
    assert all(v == round(v) and v >= 0 for v in column["qln"])
    assert sample(config, 300, seed=7) == trials
    assert sample(config, 300, seed=8) != trials


def test_random_sampling_of_choices_only_stops_when_every_point_is_drawn():
    config = RandomParameterSampling({"a": choice(1, 2), "b": choice("x", "y")}).to_json()
    trials = sample(config, 10, seed=1)
    assert sorted((t["a"], t["b"]) for t in trials) == [(1, "x"), (1, "y"), (2, "x"), (2, "y")]


def test_a_discrete_space_drawn_at_random_gets_every_point_once_even_as_it_fills_up():
    # Defect: each trial took at most 100 random draws to find a point not drawn yet, then the
    # sampling stopped: 100 points of a 100-point space, drawn at random, gave 98 or 99 trials (the
    # last free point is drawn with chance 1/100), for random sampling and for a Bayesian sweep whose
    # max_concurrent_runs made every trial random.
    space = {"x": choice(*range(100))}
    for seed in range(10):
        drawn = sample(RandomParameterSampling(space).to_json(), 150, seed)
        assert sorted(t["x"] for t in drawn) == list(range(100))
        bayesian = sample(BayesianParameterSampling(space).to_json(), 150, seed, max_concurrent_runs=100)
        assert sorted(t["x"] for t in bayesian) == list(range(100))
    space = {"n": quniform(0, 30, 1), "r": randint(3)}  # 93 points
    assert len({tuple(t.values()) for t in sample(RandomParameterSampling(space).to_json(), 200, 0)}) == 93
    # The draws of a sampling that never ran short are the same as before (its trials' cache keys too).
    assert sample(RandomParameterSampling(space).to_json(), 20, 4)[:3] == [
        {"n": 7, "r": 0},
        {"n": 22, "r": 1},
        {"n": 5, "r": 0},
    ]


# -- Bayesian sampling (pure) ------------------------------------------------------------------
def _bayesian(space, total, concurrent, seed, goal="maximize") -> dict:
    """A Bayesian sweep as planning records it."""
    generator = BayesianParameterSampling(space).to_json()
    drawn = sample(generator, total, seed, concurrent)
    trials = {f"HD_{i}": None if values is None else list(values.items()) for i, values in enumerate(drawn)}
    return {"generator_config": generator, "primary_metric_config": {"name": "score", "goal": goal},
            "max_concurrent_runs": concurrent, "seed": seed, "trials": trials}  # fmt: skip


def _optimize(objective, space, goal, seed, total=40, concurrent=1) -> tuple[dict, dict]:
    """Run a Bayesian sweep on ``objective`` as the scheduler does: each trial proposed in turn
    from the results of those before it; the trials' values and results."""
    sweep = _bayesian(space, total, concurrent, seed, goal)
    results = {}
    for name, values in sweep["trials"].items():
        if values is None:
            sweep["trials"][name] = list(proposal(sweep, name, results).items())
        results[name] = objective(dict(sweep["trials"][name]))
    return sweep["trials"], results


def _branin(values: dict) -> float:
    x1, x2 = values["x1"], values["x2"]
    return (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )


def test_bayesian_sampling_finds_better_points_than_random_sampling_with_as_many_trials():
    space = {"x1": uniform(-5, 10), "x2": uniform(0, 15)}  # Branin's: its least value is 0.398
    bayesian = [min(_optimize(_branin, space, "minimize", seed)[1].values()) for seed in range(10)]
    drawn = [min(map(_branin, sample(RandomParameterSampling(space).to_json(), 40, seed))) for seed in range(10)]
    assert statistics.median(bayesian) < 0.6 * statistics.median(drawn)  # 0.46 against 1.72 when written

    def objective(values):  # best at c == "b", n == 13, x == 0.7
        return -((values["x"] - 0.7) ** 2) - ((values["n"] - 13) / 20) ** 2 + (0.1 if values["c"] == "b" else 0)

    space = {"x": uniform(0, 1), "c": choice("a", "b", "c"), "n": quniform(0, 20, 1)}
    for seed in range(4):
        trials, _ = _optimize(objective, space, "maximize", seed, total=30)
        late = [dict(trials[f"HD_{i}"]) for i in range(20, 30)]
        assert sum(values["c"] == "b" for values in late) >= 8
        assert all(isinstance(values["n"], int) and 0 <= values["n"] <= 20 for values in late)
        assert _optimize(objective, space, "maximize", seed, total=30)[0] == trials  # the same results, the same trials


def test_bayesian_trials_wait_for_the_trials_before_them_and_never_repeat_a_point_of_a_discrete_space():
    sweep = _bayesian({"a": choice(1, 2, 3), "b": quniform(0, 4, 2)}, total=20, concurrent=2, seed=1)
    names = list(sweep["trials"])
    assert len(names) == 9  # the space's points: 3 x 3
    assert [values is None for values in sweep["trials"].values()] == [False] * 4 + [True] * 5  # half are random
    waits = proposal_waits(sweep)
    # The first two proposed wait for every trial but the one beside them; the later ones for the two
    # trials the proposed one two before did not wait for (its start says the rest ended).
    assert waits == {names[4]: names[:3], names[5]: names[:4], **{names[i]: names[i - 3 : i - 1] for i in (6, 7, 8)}}
    trials, _ = _optimize(
        lambda v: v["a"] * v["b"], {"a": choice(1, 2, 3), "b": quniform(0, 4, 2)}, "maximize", 1, 20, 2
    )
    assert sorted(tuple(dict(values).values()) for values in trials.values()) == [
        (a, b) for a in (1, 2, 3) for b in (0, 2, 4)
    ]
    assert len(_bayesian({"x": uniform(0, 1)}, total=30, concurrent=4, seed=1)["trials"]) == 30


# -- early termination rules (pure) ------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "goal", "series", "stopped"),
    [
        # best 10 at interval 2; slack_factor 0.1 keeps 9.5 (9.5 * 1.1 >= 10), ends 8
        (BanditPolicy(slack_factor=0.1), "maximize", {"a": [9, 10], "b": [9.5, 9.5], "c": [8, 8]}, {"c"}),
        # minimize: best 1.0; slack_amount 0.5 keeps 1.4, ends 1.6
        (BanditPolicy(slack_amount=0.5), "minimize", {"a": [1.0], "b": [1.4], "c": [1.6]}, {"c"}),
        # judged only at multiples of evaluation_interval from delay_evaluation: interval 1 is skipped
        (
            BanditPolicy(slack_factor=0.1, evaluation_interval=2, delay_evaluation=2),
            "maximize",
            {"a": [10], "c": [1]},
            set(),
        ),  # fmt: skip
        # running averages 5, 2, 1: median 2; best 1.5 < 2 ends c, b's best 3 stays
        (MedianStoppingPolicy(), "maximize", {"a": [5, 5], "b": [1, 3], "c": [1, 1.5]}, {"c"}),
        # 4 trials, 50 %: the two lowest end
        (TruncationSelectionPolicy(50), "maximize", {"a": [4], "b": [3], "c": [2], "d": [1]}, {"c", "d"}),
        # a tie across the cut is not a ranking: nobody ends
        (TruncationSelectionPolicy(50), "maximize", {"a": [4], "b": [4]}, set()),
        (NoTerminationPolicy(), "maximize", {"a": [4], "b": [0]}, set()),
    ],
)
def test_each_policy_ends_the_trials_its_rule_says_and_no_other(policy, goal, series, stopped):
    evaluated: dict[str, int] = {}
    stops = to_stop(policy.to_json(), goal, series, list(series), evaluated)
    assert set(stops) == stopped
    assert all(type(policy).__name__ in reason for reason in stops.values())
    assert to_stop(policy.to_json(), goal, series, list(series), evaluated) == {}  # each interval judged once


# -- real sweeps -------------------------------------------------------------------------------
def test_grid_sweep_runs_every_combination_two_at_a_time_and_ranks_the_trials(ws, project, monkeypatch):
    monkeypatch.setenv("LOCALPIPE_CPUS", "4")  # room for more than the sweep's two at once
    config = _config(ws, project, {"x": choice(1, 2, 3), "--y": choice(10, 20)}, arguments=["--pause", 0.3])
    run = Experiment(ws, "sweep").submit(config)
    assert isinstance(run, HyperDriveRun) and run.type == "hyperdrive"
    run.wait_for_completion(show_output=False)
    assert run.get_status() == "Completed"

    values = {rid: json.loads(v) for rid, v in run.get_hyperparameters().items()}
    assert sorted((v["x"], v["--y"]) for v in values.values()) == [(x, y) for x in (1, 2, 3) for y in (10, 20)]
    steps = run.get_details()["steps"]
    assert len(steps) == 6 and overlaps([{"start": s["started_at"], "end": s["ended_at"]} for s in steps]) == 2
    arguments = {f"{run.id}_{s['id']}": s["arguments"] for s in steps}
    for child in run.get_children():  # the values reached the script as Azure passes them: --name value
        given = values[child.id]
        assert arguments[child.id][-6:] == ["--pause", "0.3", "--x", str(given["x"]), "--y", str(given["--y"])]
        assert child.get_metrics()["score"] == given["x"] * given["--y"]

    ranked = run.get_children_sorted_by_primary_metric()
    assert [r["best_primary_metric"] for r in ranked] == [60, 40, 30, 20, 20, 10]
    assert ranked[0]["hyperparameters"] == json.dumps({"x": 3, "--y": 20})
    assert [r["best_primary_metric"] for r in run.get_children_sorted_by_primary_metric(top=2, reverse=True)] == [
        10, 20,
    ]  # fmt: skip
    best = run.get_best_run_by_primary_metric()
    assert best.get_metrics()["score"] == 60 and json.loads(run.get_hyperparameters()[best.id]) == {"x": 3, "--y": 20}
    assert isinstance(Run.get(ws, run.id), HyperDriveRun)
    with pytest.raises(UserErrorException, match="it is a hyperparameter sweep .* which the pipeline YAML has no form"):
        run.save(str(ws.root))  # the YAML would run its trials without their sweep
    assert set(run.get_metrics()) == {c.id for c in run.get_children()}


SLOW = ["--iterations", 10, "--pause", 0.2]  # 2 s: the scheduler (once a second) judges it while it runs


@pytest.mark.parametrize(
    "policy",
    [BanditPolicy(slack_factor=0.1), MedianStoppingPolicy(), TruncationSelectionPolicy(truncation_percentage=50)],
    ids=["bandit", "median", "truncation"],
)
def test_a_policy_ends_the_trials_behind_with_their_process_and_a_reason_and_no_other(ws, project, policy):
    # HD_0 and HD_1 score 4 (a tie: none of the rules ends either, whatever they see), then HD_2 and HD_3
    # score 1 at every interval: behind the finished 4s by each rule, whenever they are judged.
    space = {"x": choice(4, 1), "copy": choice(0, 1)}
    run = Experiment(ws, "sweep").submit(_config(ws, project, space, policy=policy, arguments=SLOW))
    run.wait_for_completion(show_output=False)
    statuses = _statuses(run)
    assert {name: status for name, (status, _) in statuses.items()} == {
        "HD_0": "Completed", "HD_1": "Completed", "HD_2": "Canceled", "HD_3": "Canceled",
    }  # fmt: skip
    for name in ("HD_2", "HD_3"):
        assert statuses[name][1].startswith(f"terminated early by {type(policy).__name__} at interval ")
    assert run.get_status() == "Completed"  # trials a policy ended are not failures
    ended = [s for s in run.get_details()["steps"] if s["status"] == "Canceled"]
    assert all(s["signal"] == 15 for s in ended)  # its process ended by the scheduler
    for child in run.get_children(status="Canceled"):  # ended before its 10 loggings
        logged = child.get_metrics().get("score", [])
        assert len(logged if isinstance(logged, list) else [logged]) < 10


def test_a_resubmitted_sweep_reuses_unchanged_trials_and_reruns_changed_ones(ws, project):
    space = {"x": uniform(0, 1), "--y": choice(1, 2)}
    config = _config(ws, project, space, sampling=lambda s: RandomParameterSampling(s, {"rndseed": 3}), total=4)
    first = Experiment(ws, "sweep").submit(config)
    first.wait_for_completion(show_output=False)
    second = Experiment(ws, "sweep").submit(config)
    second.wait_for_completion(show_output=False)
    assert {s for s, _ in _statuses(second).values()} == {"Reused"}
    assert set(second.get_hyperparameters().values()) == set(first.get_hyperparameters().values())
    assert second.get_best_run_by_primary_metric().get_metrics() == first.get_best_run_by_primary_metric().get_metrics()

    project("src/train.py", TRAIN + "\n# changed\n")
    third = Experiment(ws, "sweep").submit(config)
    third.wait_for_completion(show_output=False)
    assert {s for s, _ in _statuses(third).values()} == {"Completed"}


def test_a_bayesian_sweep_proposes_each_later_trial_from_the_ones_that_ended_and_a_resubmission_reuses_them(
    ws, project, localpipe
):
    space = {"x": uniform(0, 10), "--y": choice(1, 2)}
    sampling = lambda s: BayesianParameterSampling(s, {"rndseed": 5})  # noqa: E731
    config = _config(ws, project, space, sampling=sampling, total=8, concurrent=2)
    run = Experiment(ws, "sweep").submit(config)
    run.wait_for_completion(show_output=False)
    steps = {s["name"]: s for s in run.get_details()["steps"]}
    assert {s["status"] for s in steps.values()} == {"Completed"}
    values = {child.name: json.loads(v) for child in run.get_children() for cid, v in run.get_hyperparameters().items()
              if cid == child.id}  # fmt: skip
    assert sorted(values) == [f"HD_{i}" for i in range(8)]
    for i in range(4, 8):  # proposed: after every trial but the one beside it ended, with what they logged
        trial = steps[f"HD_{i}"]
        assert trial["started_at"] >= max(steps[f"HD_{j}"]["ended_at"] for j in range(i - 1))
        assert json.loads(trial["properties"]["hyperparameters"]) == values[f"HD_{i}"]
        assert trial["arguments"][-4:] == ["--x", str(values[f"HD_{i}"]["x"]), "--y", str(values[f"HD_{i}"]["--y"])]
    assert overlaps([{"start": s["started_at"], "end": s["ended_at"]} for s in steps.values()]) <= 2
    shown = localpipe("show", str(run.id), check=True).stdout
    assert all(f"x={v['x']!r} --y={v['--y']!r}" in shown for v in values.values())
    with TestClient(create_app(ws.root / ".localpipe", "token"), base_url="http://127.0.0.1:8765") as studio:
        studio.cookies.set("localpipe_token_8765", "token")
        (sweep,) = studio.get(f"/runs/{run.id}.json").json()["sweeps"]
        page = studio.get(f"/runs/{run.id}").text
    assert sweep["sampling"] == "BayesianOptimization" and sweep["metric"] == {"name": "score", "goal": "maximize"}
    best = [t["best"] for t in sweep["trials"]]
    assert best == sorted(best, reverse=True) and {t["name"]: t["values"] for t in sweep["trials"]} == values
    assert len(sweep["chart"]["dots"]) == 8  # each trial's best, in the order made
    assert all(f"<code>x={v['x']}</code>" in page for v in values.values())

    again = Experiment(ws, "sweep").submit(config)
    again.wait_for_completion(show_output=False)
    assert {s for s, _ in _statuses(again).values()} == {"Reused"}  # the same results: the same proposals
    assert sorted(again.get_hyperparameters().values()) == sorted(run.get_hyperparameters().values())


def test_resume_from_warm_starts_a_sweep_with_the_trials_of_earlier_ones(ws, project):
    # Bayesian sampling proposes from the parent's trials as from its own; checked as the SDK checks them.
    space = {"x": uniform(0, 10), "--y": choice(1, 2)}
    bayesian = lambda s: BayesianParameterSampling(s, {"rndseed": 5})  # noqa: E731
    parent = Experiment(ws, "sweep").submit(_config(ws, project, space, sampling=bayesian, total=8))
    parent.wait_for_completion(show_output=False)
    warm = _config(ws, project, space, sampling=bayesian, total=6, resume_from=parent)
    assert warm.sweep()["warm_start"]["runs"] == [parent.number]
    kept = warm.sweep()["warm_start"]["trials"]
    assert sorted(json.dumps(dict(pairs)) for pairs, _ in kept) == sorted(parent.get_hyperparameters().values())
    assert all(series == [dict(pairs)["x"] * dict(pairs)["--y"]] for pairs, series in kept)  # what each logged
    run = Experiment(ws, "sweep").submit(warm)
    run.wait_for_completion(show_output=False)
    cold = Experiment(ws, "sweep").submit(_config(ws, project, space, sampling=bayesian, total=6))
    cold.wait_for_completion(show_output=False)
    proposed = {json.loads(v)["x"] for v in run.get_hyperparameters().values()}
    alone = {json.loads(v)["x"] for v in cold.get_hyperparameters().values()}
    assert len(proposed & alone) == 3  # the same random trials; the proposed ones saw the parent's 8 too
    assert json.loads(parent.get_tags()["primary_metric_config"]) == {"name": "score", "goal": "maximize"}
    assert parent.get_tags()["max_total_jobs"] == "8"  # the tags Azure ML gives a HyperDrive run

    minimize = dict(goal=PrimaryMetricGoal.MINIMIZE, resume_from=parent)
    with pytest.raises(HyperDriveConfigException, match="primary metric goal is 'maximize', this sweep's 'minimize'"):
        _config(ws, project, space, sampling=bayesian, **minimize)
    with pytest.raises(HyperDriveConfigException, match="parameter space is not this Bayesian sampling's"):
        _config(ws, project, {"x": uniform(0, 5), "--y": choice(1, 2)}, sampling=bayesian, resume_from=[parent])
    with pytest.raises(HyperDriveConfigException, match="names a run twice"):
        _config(ws, project, space, sampling=bayesian, resume_from=[parent, parent])
    with pytest.raises(HyperDriveConfigException, match="at most 5 runs"):
        _config(ws, project, space, sampling=bayesian, resume_from=[parent] * 6)
    with pytest.raises(HyperDriveConfigException, match="each must be a HyperDriveRun"):
        _config(ws, project, space, sampling=bayesian, resume_from=[Run.get(ws, str(parent.id)).get_children()[0]])


def test_resume_from_lets_a_policy_compare_with_the_earlier_sweeps_trials(ws, project):
    # Alone, a trial scoring 1 is its sweep's best and runs to its end; beside the parent's 4s it is behind.
    policy = BanditPolicy(slack_factor=0.1)
    parent = Experiment(ws, "sweep").submit(_config(ws, project, {"x": choice(4)}, total=1))
    parent.wait_for_completion(show_output=False)
    space = {"x": choice(1)}
    alone = Experiment(ws, "sweep").submit(_config(ws, project, space, policy=policy, arguments=SLOW, total=1))
    alone.wait_for_completion(show_output=False)
    assert _statuses(alone)["HD_0"][0] == "Completed"
    # (another argument: the same trial would be reused from the run above, its result known)
    warm = _config(ws, project, space, policy=policy, arguments=[*SLOW, "--copy", 1], total=1, resume_from=parent)
    run = Experiment(ws, "sweep").submit(warm)
    run.wait_for_completion(show_output=False)
    status, reason = _statuses(run)["HD_0"]
    assert status == "Canceled" and reason.startswith("terminated early by BanditPolicy at interval ")
    assert "best 1 is outside slack_factor 0.1 of the best trial's 4" in reason
    best = run.get_best_run_by_primary_metric()  # among the trials of the run it resumed from too
    assert (best.pipeline_run_id, best.get_metrics()["score"]) == (parent.id, 4)
    assert run.get_best_run_by_primary_metric(include_resume_from_runs=False).pipeline_run_id == run.id


def test_a_bayesian_sweep_of_more_than_ten_trials_waits_in_their_order_and_a_failed_trial_blocks_none(ws, project):
    # Defect: history.db keeps the sweep's trials as JSON with sorted keys (HD_0, HD_1, HD_10, HD_11, HD_2,
    # ...), and the detached scheduler read their order from it: its waits were not the planned edges,
    # so a failed trial canceled later ones as "not run: upstream step failed", and proposals saw the
    # wrong trials.
    sweep = _bayesian({"x": uniform(0, 10)}, total=12, concurrent=2, seed=3)
    stored = json.loads(json.dumps(sweep, sort_keys=True))
    assert proposal_waits(stored) == proposal_waits(sweep)
    best = {f"HD_{i}": float(i) for i in range(10)}
    for i in range(6, 11):  # as if proposed
        stored["trials"][f"HD_{i}"] = sweep["trials"][f"HD_{i}"] = [["x", i / 2]]
    assert proposal(stored, "HD_11", best) == proposal(sweep, "HD_11", best)
    assert {row["name"]: row["index"] for row in ranked_trials(stored, [], {})}["HD_10"] == 10  # the studio's order

    sampling = lambda s: BayesianParameterSampling(s, {"rndseed": 3})  # noqa: E731
    config = _config(ws, project, {"x": uniform(0, 10)}, sampling=sampling, total=12, concurrent=2)
    project(
        "src/train.py", "import sys\nfrom azureml.core import Run\nRun.get_context().log('score', 1)\nsys.exit(1)\n"
    )
    run = Experiment(ws, "sweep").submit(config)
    run.wait_for_completion(show_output=False, raise_on_error=False)
    steps = {s["name"]: s for s in run.get_details()["steps"]}
    assert {name: s["status"] for name, s in steps.items()} == {f"HD_{i}": "Failed" for i in range(12)}
    for i in range(6, 12):  # proposed: each after every trial but the one beside it ended
        assert steps[f"HD_{i}"]["started_at"] >= max(steps[f"HD_{j}"]["ended_at"] for j in range(i - 1))


def test_a_trial_logging_nan_as_its_primary_metric_counts_as_one_that_logged_none(ws, project, localpipe):
    # Defect: NaN passed as a number: Bayesian sampling ranked the trials that logged it (sorting by
    # NaN is no order) and proposed around them, and the run ranked them first (localpipe show, and
    # get_best_run_by_primary_metric could answer one).
    from localpipe.engine.sweep import SweepWatch

    sweep = {**_bayesian({"x": uniform(0, 1)}, total=8, concurrent=1, seed=2), "max_duration_minutes": 60}
    with_nan, without = SweepWatch(copy.deepcopy([sweep]), 0), SweepWatch(copy.deepcopy([sweep]), 0)
    for i in range(4):
        with_nan.observe(f"HD_{i}", [{"name": "score", "value": math.nan if i < 2 else float(i)}])
        without.observe(f"HD_{i}", [] if i < 2 else [{"name": "score", "value": float(i)}])
    assert with_nan.propose("HD_4", None) == without.propose("HD_4", None)

    config = _config(ws, project, {"x": choice(1, 2, 3, 4)}, sampling=BayesianParameterSampling, total=4, concurrent=1)
    project("src/train.py", "import sys\nfrom azureml.core import Run\nx = float(sys.argv[-1])\n"
            "Run.get_context().log('score', float('nan') if x == 4 else x)\n")  # fmt: skip
    run = Experiment(ws, "sweep").submit(config)
    run.wait_for_completion(show_output=False)
    values = {cid: json.loads(v)["x"] for cid, v in run.get_hyperparameters().items()}
    assert values[run.get_best_run_by_primary_metric().id] == 3
    rows = run.get_children_sorted_by_primary_metric()
    assert [(values[r["run_id"]], r["best_primary_metric"]) for r in rows] == [(3, 3), (2, 2), (1, 1), (4, None)]
    shown = localpipe("show", str(run.id), check=True).stdout.split("\n\n")[0].splitlines()
    assert "x=4" in shown[-1] and "no score logged" in shown[-1], shown  # the trials, best first


def test_a_primary_metric_logged_with_log_list_feeds_bayesian_proposals_as_it_feeds_the_ranking():
    # Defect: the sweep's observer took only scalar rows, so a trial that logged its primary metric
    # with run.log_list was ranked by it (get_children_sorted_by_primary_metric flattens lists) but
    # no proposal saw it: the sweep ran as random sampling.
    from localpipe.engine.sweep import SweepWatch

    sweep = {**_bayesian({"x": uniform(0, 1)}, total=8, concurrent=1, seed=2), "max_duration_minutes": 60}
    listed, scalar = SweepWatch(copy.deepcopy([sweep]), 0), SweepWatch(copy.deepcopy([sweep]), 0)
    for i in range(4):
        listed.observe(f"HD_{i}", [{"name": "score", "kind": "list", "value": [float(i), 1.0, "n/a"]}])
        scalar.observe(f"HD_{i}", [{"name": "score", "kind": "scalar", "value": v} for v in (float(i), 1.0)])
    assert listed.series == scalar.series
    assert listed.propose("HD_4", None) == scalar.propose("HD_4", None)
    rows = [{"step": "HD_0", "name": "score", "kind": "list", "value": [2.0, 7.0, math.nan]}]
    assert ranked_trials(sweep, rows, {})[0] == {
        "name": "HD_0",
        "index": 0,
        "status": None,
        "values": dict(sweep["trials"]["HD_0"]),
        "best": 7.0,
    }  # localpipe show's


def test_a_primary_metric_too_large_for_a_float_ranks_first_and_ends_no_scheduler(ws, project, localpipe):
    # Defect: the sweep's observer made each value a float, and 10**400 raised OverflowError in the
    # scheduler's loop: "scheduler exited", every other trial canceled; localpipe show then raised
    # it too, formatting the value (a traceback, no trials).
    config = _config(ws, project, {"x": choice(1, 2, 3)}, sampling=BayesianParameterSampling, total=3, concurrent=1)
    project("src/train.py", "import sys\nfrom azureml.core import Run\nx = float(sys.argv[-1])\n"
            "Run.get_context().log('score', 10**400 if x == 2 else x)\n")  # fmt: skip
    run = Experiment(ws, "sweep").submit(config)
    run.wait_for_completion(show_output=False)
    values = {cid: json.loads(v)["x"] for cid, v in run.get_hyperparameters().items()}
    assert [values[r["run_id"]] for r in run.get_children_sorted_by_primary_metric()] == [2, 3, 1]
    shown = localpipe("show", str(run.id), check=True).stdout.splitlines()
    assert shown[2].split()[1:] == ["Completed", "score", "1.00000e+400", "x=2"], shown  # the best first
    with TestClient(create_app(ws.root / ".localpipe", "token"), base_url="http://127.0.0.1:8765") as studio:
        studio.cookies.set("localpipe_token_8765", "token")  # the run page answered 500, placing it on its chart
        page = studio.get(f"/runs/{run.id}")
    assert page.status_code == 200 and len(page.text.split('class="dot"')) == 3  # 1 and 3 placed; 10**400 cannot be
    warm = _config(ws, project, {"x": choice(1, 2, 3)}, sampling=BayesianParameterSampling, total=3, resume_from=run)
    assert [10**400] in [series for _, series in warm.sweep()["warm_start"]["trials"]]  # it raised OverflowError


def test_cancel_ends_every_trial_and_max_duration_ends_the_sweep(ws, project):
    run = Experiment(ws, "sweep").submit(_config(ws, project, {"x": choice(1, 2, 3)}, arguments=["--pause", 30]))
    wait_for(lambda: run.get_children(status="Running"), what="a trial to run")
    run.cancel()
    run.wait_for_completion(show_output=False, raise_on_error=False)
    assert run.get_status() == "Canceled"
    assert {s for s, _ in _statuses(run).values()} == {"Canceled"}

    late = _config(ws, project, {"x": choice(1, 2, 3)}, arguments=["--pause", 30], max_duration_minutes=0.02)
    run = Experiment(ws, "sweep").submit(late)
    run.wait_for_completion(show_output=False, raise_on_error=False)
    statuses = _statuses(run)
    assert {s for s, _ in statuses.values()} == {"Canceled"}
    assert all("max_duration_minutes (0.02)" in reason for _, reason in statuses.values())


def test_a_trial_that_logs_nan_is_never_the_best(ws, project, localpipe):
    run = Experiment(ws, "sweep").submit(_config(ws, project, {"x": choice(float("nan"), 2.0)}, total=2))
    run.wait_for_completion(show_output=False)
    rows = run.get_children_sorted_by_primary_metric()
    assert [row["best_primary_metric"] for row in rows] == [2.0, None]
    assert run.get_best_run_by_primary_metric().name == "HD_1"
    shown = localpipe("show", str(run.id), check=True).stdout.splitlines()
    assert shown[2].split()[:4] == ["HD_1", "Completed", "score", "2"] and "no score logged" in shown[3]


def _sweep_file(project, sampling: str, goal: str, settings: str) -> None:
    """sweep.py, submitting a sweep of src/train.py (TRAIN) to the experiment "sweep"."""
    project(
        "sweep.py",
        f"""
        from azureml.core import Experiment, ScriptRunConfig, Workspace
        from azureml.train.hyperdrive import *

        ws = Workspace.from_config()
        hd = HyperDriveConfig(
            run_config=ScriptRunConfig(source_directory="src", script="train.py"),
            hyperparameter_sampling={sampling}, primary_metric_name="score",
            primary_metric_goal=PrimaryMetricGoal.{goal}, {settings}
        )
        Experiment(ws, "sweep").submit(hd)
        """,
    )
    project("src/train.py", TRAIN)


def test_localpipe_show_lists_the_trials_with_their_values_and_metric(ws, project, localpipe):
    _sweep_file(project, 'GridParameterSampling({"--x": choice(2, 5), "y": choice(3)})', "MINIMIZE", "max_total_runs=4")
    localpipe("submit", "sweep.py", check=True)
    shown = localpipe("show", "1", check=True).stdout.splitlines()
    assert shown[1] == "trials by score (minimize), best first:"
    assert shown[2].split() == ["HD_0", "Completed", "score", "6", "--x=2", "y=3"]
    assert shown[3].split() == ["HD_1", "Completed", "score", "15", "--x=5", "y=3"]


def test_localpipe_status_of_a_bayesian_sweep_proposes_its_trials_as_a_submission_would(ws, project, localpipe):
    # Defect: status decided the proposed trials without their values, so after a run it said
    # "run: arguments changed" of each, where a submission reused every one.
    sampling = 'BayesianParameterSampling({"x": uniform(0, 10)}, {"rndseed": 4})'
    _sweep_file(project, sampling, "MAXIMIZE", "max_total_runs=6, max_concurrent_runs=1")
    localpipe("submit", "sweep.py", check=True)
    rows = json.loads(localpipe("status", "sweep.py", "--json", check=True).stdout)
    assert [(row["step"], row["action"]) for row in rows] == [(f"HD_{i}", "reuse") for i in range(6)], rows
    project("src/train.py", TRAIN.replace('run.log("score", args.x * args.y)', 'run.log("score", -args.x)'))
    rows = json.loads(localpipe("status", "sweep.py", "--json", check=True).stdout)
    assert [row["action"] for row in rows] == ["run"] * 3 + ["maybe"] * 3  # proposed from what the three log
    assert rows[3]["reason"] == 'depends on step "HD_0", which runs: reused if its output is unchanged'


_SRC = ScriptRunConfig(source_directory=".", script="train.py")
_GRID = GridParameterSampling({"x": choice(1, 2)})


def _hd(**changes):
    given = dict(run_config=_SRC, hyperparameter_sampling=_GRID, primary_metric_name="score",
                 primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=4)  # fmt: skip
    return HyperDriveConfig(**{**given, **changes})


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: choice(), HyperDriveConfigException, "choice() needs at least one option"),
        (lambda: randint(0), HyperDriveConfigException, "randint(upper=0): upper must be an int above 0"),
        (lambda: uniform(2, 1), HyperDriveConfigException, "min_value must be below max_value"),
        (lambda: uniform(0, math.nan), HyperDriveConfigException, "max_value must be a finite number"),
        (lambda: loguniform(-math.inf, 0), HyperDriveConfigException, "min_value must be a finite number"),
        (lambda: uniform(-1e308, 1e308), HyperDriveConfigException, "too wide a range for a float"),
        (lambda: quniform(0, 1, 0.5), HyperDriveConfigException, "q must be a whole number"),
        (lambda: normal(0, -1), HyperDriveConfigException, "sigma must not be negative"),
        (lambda: GridParameterSampling({"x": uniform(0, 1)}), HyperDriveConfigException, "uses uniform"),
        (lambda: RandomParameterSampling({"x": choice(1, "a")}), HyperDriveConfigException, "all or none"),
        (lambda: BayesianParameterSampling({"x": loguniform(0, 1)}), HyperDriveConfigException, "uses loguniform"),
        (lambda: BayesianParameterSampling({"x": quniform(0, 1.0, 1)}), HyperDriveConfigException, "to be int"),
        (lambda: BayesianParameterSampling({"x": quniform(0, 10**6, 1)}), HyperDriveConfigException, "too many"),
        (
            lambda: _hd(
                hyperparameter_sampling=BayesianParameterSampling({"x": choice(1, 2)}),
                policy=BanditPolicy(slack_factor=0.1),
            ),
            HyperDriveScenarioNotSupportedException,
            "No early termination policy is currently supported with Bayesian sampling",
        ),  # fmt: skip
        (lambda: BanditPolicy(slack_factor=0.1, slack_amount=1), HyperDriveConfigException, "exactly one of"),
        (lambda: TruncationSelectionPolicy(100), HyperDriveConfigException, "between 1 and 99"),
        (lambda: MedianStoppingPolicy(evaluation_interval=1.5), HyperDriveConfigException, "must be an int"),
        (lambda: _hd(run_config=None), HyperDriveConfigException, "exactly one of estimator, run_config, pipeline"),
        (lambda: _hd(run_config="train.py"), HyperDriveConfigException, "must be a ScriptRunConfig"),
        (lambda: _hd(primary_metric_goal="max"), HyperDriveConfigException, "PrimaryMetricGoal.MAXIMIZE"),
        (lambda: _hd(max_total_runs=0), HyperDriveConfigException, "max_total_runs must be an int above 0"),
        (lambda: _hd(max_concurrent_runs=-1), HyperDriveConfigException, "max_concurrent_runs must be an int"),
        (lambda: _hd(policy="bandit"), HyperDriveConfigException, "give a BanditPolicy"),
        (lambda: _hd(resume_child_runs=["run"]), HyperDriveScenarioNotSupportedException, "resuming trials"),
        (lambda: _hd(resume_from=["run"]), HyperDriveConfigException, "each must be a HyperDriveRun"),
    ],
    ids=[
        "empty choice",
        "randint 0",
        "uniform order",
        "uniform of nan",  # accepted, they drew nan or inf, and a Bayesian proposal ended its scheduler
        "loguniform of inf",
        "uniform beyond a float",
        "q not whole",
        "negative sigma",
        "grid of uniform",
        "mixed choice",
        "bayesian loguniform",
        "bayesian quniform of floats",
        "bayesian quniform too fine",
        "bayesian with a policy",
        "two slacks",
        "truncation 100",
        "interval not int",
        "no run_config",
        "run_config not ScriptRunConfig",
        "goal not PrimaryMetricGoal",
        "max_total_runs 0",
        "max_concurrent -1",
        "policy not a policy",
        "resume_child_runs",
        "resume_from not a run",
    ],  # fmt: skip
)
def test_a_bad_configuration_is_one_line_naming_the_value(make, error, words):
    with pytest.raises(error) as raised:
        make()
    assert words in str(raised.value) and "\n" not in str(raised.value)
    assert raised.value.exit_code == 2


def test_localpipe_submit_refuses_a_bad_configuration_in_one_line_with_exit_2(ws, project, localpipe):
    project(
        "sweep.py",
        """
        from azureml.core import Experiment, ScriptRunConfig, Workspace
        from azureml.train.hyperdrive import BanditPolicy, GridParameterSampling, HyperDriveConfig
        from azureml.train.hyperdrive import PrimaryMetricGoal, choice

        hd = HyperDriveConfig(
            run_config=ScriptRunConfig(source_directory=".", script="train.py"),
            hyperparameter_sampling=GridParameterSampling({"x": choice(1, 2)}),
            policy=BanditPolicy(evaluation_interval=1),
            primary_metric_name="score", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=4,
        )
        Experiment(Workspace.from_config(), "sweep").submit(hd)
        """,
    )
    proc = localpipe("submit", "sweep.py")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "BanditPolicy needs exactly one of slack_factor and slack_amount" in proc.stderr
    assert localpipe("runs", "--json", check=True).stdout.strip() == "[]"


def test_a_sweep_whose_run_config_writes_output_data_is_refused_before_anything_is_recorded(ws, project, history):
    from localpipe import OutputFileDatasetConfig, RunConfiguration

    project("src/train.py", TRAIN)
    run_config = RunConfiguration()
    run_config.output_data = {"model": OutputFileDatasetConfig(name="model")}
    src = ScriptRunConfig(source_directory=str(ws.root / "src"), script="train.py", run_config=run_config)
    config = HyperDriveConfig(
        run_config=src, hyperparameter_sampling=GridParameterSampling({"x": choice(1, 2)}), primary_metric_name="score",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=2,
    )  # fmt: skip
    with pytest.raises(HyperDriveConfigException, match=r"output_data \(model\) would be written by every trial"):
        Experiment(ws, "sweep").submit(config)
    assert history.runs.list(10) == []


# -- HyperDriveStep ----------------------------------------------------------------------------
TRIAL_WITH_MODEL = """
import argparse, os, time
from azureml.core import Run

time.sleep(0.3)  # long enough to overlap another trial when the cap lets it
parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--copy", type=int, default=0)
parser.add_argument("--iterations", type=int, default=1)
args = parser.parse_args()
base = float(open(os.path.join(args.data, "base.txt")).read())
for _ in range(args.iterations):
    Run.get_context().log("score", base - (args.x - 3) ** 2)
    time.sleep(0.2 if args.iterations > 1 else 0)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as f:
    f.write(f"model x={args.x}")
"""


def _sweep_pipeline(ws, project, space, policy=None, arguments=(), sampling=GridParameterSampling):
    from localpipe import Pipeline, PipelineData, PythonScriptStep
    from localpipe.sdk.hyperdrive import HyperDriveStep, TrainingOutput

    project("prep/prep.py", "import os, sys\nos.makedirs(sys.argv[1], exist_ok=True)\n"
            "open(os.path.join(sys.argv[1], 'base.txt'), 'w').write('10')\n")  # fmt: skip
    project("src/train.py", TRIAL_WITH_MODEL)
    project(
        "use/use.py",
        """
        import json, os, sys
        metrics, model, out = sys.argv[1:]
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "seen.json"), "w") as f:
            json.dump({"metrics": json.load(open(metrics)), "model": open(model).read()}, f)
        """,
    )
    data, seen = PipelineData("data"), PipelineData("seen")
    prep = PythonScriptStep("prep.py", source_directory=str(ws.root / "prep"), arguments=[data])
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=str(ws.root / "src"), script="train.py"),
        hyperparameter_sampling=sampling(space), primary_metric_name="score",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE, max_total_runs=8, max_concurrent_runs=2, policy=policy,
    )  # fmt: skip
    metrics = PipelineData("metrics", training_output=TrainingOutput("Metrics"))
    model = PipelineData("model", training_output=TrainingOutput("Model", model_file="outputs/model.txt"))
    tune = HyperDriveStep("tune", config, estimator_entry_script_arguments=["--data", data.as_input(), *arguments],
                          inputs=[data], outputs=[metrics, model])  # fmt: skip
    use = PythonScriptStep("use.py", source_directory=str(ws.root / "use"),
                           arguments=[metrics.as_input(), model.as_input(), seen])  # fmt: skip
    assert prep  # pulled in as the producer of the trials' input
    return Pipeline(ws, [use])


def test_a_hyperdrive_steps_model_output_is_the_best_trial_that_logged_a_number_not_nan(ws, project, run_pipeline):
    from localpipe import PipelineRun

    # The trial that logged NaN comes first: with NaN taken as a number, max() kept it as the best.
    pipeline = _sweep_pipeline(ws, project, {"x": choice(1, 2, 3, 4, 5)})
    project(
        "src/train.py", TRIAL_WITH_MODEL.replace("base - (args.x - 3) ** 2", "float('nan') if args.x == 1 else args.x")
    )
    run_id, status, steps = run_pipeline(pipeline, "tune")
    assert status.value == "Completed", {n: s["reason"] for n, s in steps.items()}
    seen_dir = ws.root / "seen"
    PipelineRun(Experiment(ws, "tune"), run_id).find_step_run("use.py")[0].get_output_data("seen").download(seen_dir)
    assert json.loads(next(seen_dir.rglob("seen.json")).read_text())["model"] == "model x=5.0"


def test_hyperdrive_step_runs_its_trials_in_the_pipeline_and_feeds_the_next_step_its_metrics_and_best_model(
    ws, project, run_pipeline, monkeypatch
):
    from localpipe import PipelineRun
    from localpipe.client.runs import HyperDriveStepRun

    monkeypatch.setenv("LOCALPIPE_CPUS", "4")  # room for more than the sweep's two at once
    pipeline = _sweep_pipeline(ws, project, {"x": choice(1, 2, 3, 4, 5)})
    run_id, status, steps = run_pipeline(pipeline, "tune")
    assert status.value == "Completed", {n: s["reason"] for n, s in steps.items()}
    trials = [f"tune_HD_{i}" for i in range(5)]
    assert set(steps) == {"prep.py", "tune", "use.py", *trials}
    assert max(steps[t]["ended_at"] for t in trials) <= steps["tune"]["started_at"]
    assert overlaps([{"start": steps[t]["started_at"], "end": steps[t]["ended_at"]} for t in trials]) == 2

    run = PipelineRun(Experiment(ws, "tune"), run_id)
    seen_dir = ws.root / "seen"
    run.find_step_run("use.py")[0].get_output_data("seen").download(seen_dir)
    seen = json.loads(next(seen_dir.rglob("seen.json")).read_text())
    assert seen["metrics"] == {f"tune_HD_{i}": {"score": [10 - (x - 3) ** 2]} for i, x in enumerate([1, 2, 3, 4, 5])}
    assert seen["model"] == "model x=3.0"  # the best trial's file

    sweep = HyperDriveStepRun(run.find_step_run("tune")[0])
    assert sorted(c.name for c in sweep.get_children()) == trials
    assert sweep.get_best_run_by_primary_metric().name == "tune_HD_2"
    assert json.loads(sweep.get_hyperparameters()[sweep.get_best_run_by_primary_metric().id]) == {"x": 3}

    again = _sweep_pipeline(ws, project, {"x": choice(1, 2, 3, 4, 5)})
    _, status, steps = run_pipeline(again, "tune")
    assert status.value == "Completed"
    assert {n: s["status"] for n, s in steps.items() if n != "tune"} == dict.fromkeys(
        ["prep.py", "use.py", *trials], "Reused"
    )  # the trials, and the step reading the unchanged outputs


def test_a_hyperdrive_step_with_bayesian_sampling_proposes_its_trials_in_the_pipeline_run(ws, project, run_pipeline):
    from localpipe import PipelineRun
    from localpipe.client.runs import HyperDriveStepRun

    pipeline = _sweep_pipeline(ws, project, {"x": choice(1, 2, 3, 4, 5)}, sampling=BayesianParameterSampling)
    run_id, status, steps = run_pipeline(pipeline, "tune")
    assert status.value == "Completed", {n: s["reason"] for n, s in steps.items()}
    trials = [f"tune_HD_{i}" for i in range(5)]  # max_total_runs 8, but the space has 5 points
    assert set(steps) == {"prep.py", "tune", "use.py", *trials}
    for i in range(2, 5):  # two random trials, then each proposed once the trials before the one beside it ended
        assert steps[trials[i]]["started_at"] >= max(steps[t]["ended_at"] for t in trials[: i - 1])
    sweep = HyperDriveStepRun(PipelineRun(Experiment(ws, "tune"), run_id).find_step_run("tune")[0])
    values = sorted(json.loads(v)["x"] for v in sweep.get_hyperparameters().values())
    assert values == [1, 2, 3, 4, 5]
    assert json.loads(sweep.get_hyperparameters()[sweep.get_best_run_by_primary_metric().id]) == {"x": 3}


def test_hyperdrive_step_refuses_an_output_without_a_training_output_in_one_line(ws):
    from localpipe import PipelineData
    from localpipe.sdk.hyperdrive import HyperDriveStep

    with pytest.raises(ValueError, match="output 'plain' has no TrainingOutput: give PipelineData") as raised:
        HyperDriveStep("tune", _hd(), outputs=[PipelineData("plain")])
    assert "\n" not in str(raised.value)


def test_a_bayesian_sweep_with_few_runs_or_many_at_once_gets_the_sdks_warnings():
    bayesian = BayesianParameterSampling({"x": uniform(0, 1), "y": choice(1, 2)})
    with pytest.warns(UserWarning, match="Recommendend value:40"):
        _hd(hyperparameter_sampling=bayesian, max_total_runs=39)
    with pytest.warns(UserWarning, match="We recommend using 20 max concurrent runs or fewer"):
        _hd(hyperparameter_sampling=bayesian, max_total_runs=40, max_concurrent_runs=21)


def test_a_bayesian_sweep_whose_trials_may_all_run_at_once_warns_that_every_trial_is_random():
    # Defect: without max_concurrent_runs (so max_total_runs at once, the SDK's default) every trial was
    # random, silently: the random trials are at least max_concurrent_runs, so none was proposed.
    import warnings

    bayesian = BayesianParameterSampling({"x": uniform(0, 1), "y": choice(1, 2)})
    with pytest.warns(UserWarning, match="all 40 at once.*every trial is random: give max_concurrent_runs"):
        _hd(hyperparameter_sampling=bayesian, max_total_runs=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _hd(hyperparameter_sampling=bayesian, max_total_runs=40, max_concurrent_runs=20)
        _hd(max_total_runs=4, max_concurrent_runs=30)  # a grid: no proposals to lose


def test_a_duration_above_the_sdks_limit_is_cut_to_a_week_with_its_warning():
    with pytest.warns(UserWarning, match="exceeds the service limit of 10080 minutes"):
        config = _hd(max_duration_minutes=20000)
    assert config.sweep()["max_duration_minutes"] == 10080


def test_trials_a_policy_ends_do_not_keep_the_hyperdrive_step_from_writing_its_outputs(ws, project, run_pipeline):
    from localpipe import PipelineRun

    # x=3 scores 10 (HD_0, HD_1, tied), x=0 scores 1 at every interval: BanditPolicy ends HD_2 and HD_3
    space = {"x": choice(3, 0), "copy": choice(0, 1)}
    pipeline = _sweep_pipeline(ws, project, space, BanditPolicy(slack_factor=0.1), ["--iterations", 10])
    run_id, status, steps = run_pipeline(pipeline, "tune")
    assert status.value == "Completed", {n: s["reason"] for n, s in steps.items()}
    assert {n: s["status"] for n, s in steps.items() if "_HD_" in n} == {
        "tune_HD_0": "Completed", "tune_HD_1": "Completed", "tune_HD_2": "Canceled", "tune_HD_3": "Canceled",
    }  # fmt: skip
    assert steps["tune"]["status"] == steps["use.py"]["status"] == "Completed"
    seen_dir = ws.root / "seen"
    PipelineRun(Experiment(ws, "tune"), run_id).find_step_run("use.py")[0].get_output_data("seen").download(seen_dir)
    seen = json.loads(next(seen_dir.rglob("seen.json")).read_text())
    assert seen["model"] == "model x=3.0" and set(seen["metrics"]) == {f"tune_HD_{i}" for i in range(4)}
    assert all(len(seen["metrics"][f"tune_HD_{i}"]["score"]) < 10 for i in (2, 3))


def test_a_file_output_downloads_to_the_file_its_path_on_datastore_names(ws, project, run_pipeline, monkeypatch):
    """The hyperdrive pipeline sample's last cells: get_pipeline_output("metrics_output").download('.'),
    then open(metrics_output._path_on_datastore) and json.loads it. The metrics (a file output) were
    copied to ./<digest folder>/metrics, a folder, and _path_on_datastore did not exist (AttributeError);
    as on Azure, the path names the file, and download puts the file there."""
    from localpipe import PipelineRun

    run_id, status, _ = run_pipeline(_sweep_pipeline(ws, project, {"x": choice(2, 3)}), "tune")
    assert status.value == "Completed"
    tune = PipelineRun(Experiment(ws, "tune"), run_id).find_step_run("tune")[0]
    here = ws.root / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    metrics_output = tune.get_output_data("metrics")
    assert metrics_output.download(".", show_progress=True) == 1
    assert metrics_output._path_on_datastore == metrics_output.path_on_datastore
    assert metrics_output.path_on_datastore.endswith("/metrics")
    with open(metrics_output._path_on_datastore) as f:
        assert json.loads(f.read()) == {"tune_HD_0": {"score": [9]}, "tune_HD_1": {"score": [10]}}
    data = PipelineRun(Experiment(ws, "tune"), run_id).find_step_run("prep.py")[0].get_output_data("data")
    assert data.download(".") == 1 and (here / data.path_on_datastore / "base.txt").is_file()  # a folder's files
