"""Claim/release cycle latency of `ResourcePool` with 4 concurrent submitters (and with 1).

In a fresh workspace (`localpipe init`), each submitter is its own process (multiprocessing,
spawn) that opens the workspace's history.db through ``History.open``, creates its own
experiment, pipeline run and step run rows, and then does N cycles of ``pool.claim([one
request for 1 CPU])`` and ``pool.release(placement)`` on a pool of 8 CPUs, so claims succeed
unless the database refuses (at most 4 of the 8 CPUs are ever held). The submitters start
their cycles together (a barrier); each times every cycle with ``time.perf_counter``.

Target: a cycle under 5 ms (median and p95 over all cycles of all submitters are printed, and max).

    python bench/claims.py [--cycles 500] [--submitters 4] [--cpus 8]
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import time
from pathlib import Path

from _common import base_parser, machine, temp_workspace

TARGET_MS = 5.0


def worker(root: str, index: int, cycles: int, cpus: int, barrier, results) -> None:
    """One submitter: its own rows, then ``cycles`` timed claim/release cycles; puts its figures on ``results``."""
    from localpipe.engine.resources import ClaimRequest, ResourcePool
    from localpipe.state.history import History
    from localpipe.state.layout import Layout

    history = History.open(Layout.of(Path(root) / ".localpipe"))
    m = history.tables
    with history.write():
        experiment = m.Experiment.create(name=f"claims-{index}")
        graph = m.PipelineGraph.create(digest=f"claims-{index}", graph={})
        run = m.PipelineRun.create(experiment=experiment, pipeline=graph, status="Running")
        step = m.StepRun.create(run=run, name=f"claimer-{index}", status="Queued")
    pool = ResourcePool(history, run.id, cpus=cpus, memory=2**34)
    request = ClaimRequest(
        f"claimer-{index}", step.id, "local", {"cpus": 1, "gpus": 0, "memory": None, "max_concurrent": None}
    )
    # One untimed cycle: the first statement of a connection prepares what later ones reuse.
    placements, _ = pool.claim([request])
    for placement in placements.values():
        pool.release(placement)

    latencies: list[float] = []
    refused = errors = 0
    first_error = None
    barrier.wait()
    begin = time.perf_counter()
    for _ in range(cycles):
        start = time.perf_counter()
        try:
            placements, _ = pool.claim([request])
            if request.key in placements:
                pool.release(placements[request.key])
            else:
                refused += 1
        except Exception as exc:  # a locked database, say: counted, and the cycle still timed
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
        latencies.append(time.perf_counter() - start)
    results.put(
        {
            "index": index,
            "latencies": latencies,
            "refused": refused,
            "errors": errors,
            "first_error": first_error,
            "seconds": time.perf_counter() - begin,
        }
    )


def measure(root: Path, submitters: int, cycles: int, cpus: int) -> dict:
    """Run ``submitters`` worker processes at once; returns every cycle's latency and the failure counts."""
    context = multiprocessing.get_context("spawn")  # nothing of this process's connections is inherited
    barrier = context.Barrier(submitters)
    results = context.Queue()
    procs = [
        context.Process(target=worker, args=(str(root), i, cycles, cpus, barrier, results)) for i in range(submitters)
    ]
    for proc in procs:
        proc.start()
    found = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            sys.exit(f"bench: a submitter exited with {proc.exitcode}")
    latencies = [x for r in found for x in r["latencies"]]
    return {
        "latencies": latencies,
        "refused": sum(r["refused"] for r in found),
        "errors": sum(r["errors"] for r in found),
        "first_error": next((r["first_error"] for r in found if r["first_error"]), None),
        "seconds": max(r["seconds"] for r in found),
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(label: str, figures: dict) -> float:
    ms = [x * 1000 for x in figures["latencies"]]
    median, p95 = statistics.median(ms), percentile(ms, 0.95)
    failed = figures["refused"] + figures["errors"]
    rate = len(ms) / figures["seconds"]
    print(
        f"{label}: {len(ms)} cycles, median {median:.2f} ms, p95 {p95:.2f} ms, p99 {percentile(ms, 0.99):.2f} ms, "
        f"max {max(ms):.2f} ms; {rate:.0f} cycles/s in all; failed claims {failed} "
        f"({figures['refused']} refused, {figures['errors']} errors)"
        f"  (target < {TARGET_MS:g} ms: {'met' if p95 < TARGET_MS else 'MISSED'} at p95, "
        f"{'met' if median < TARGET_MS else 'MISSED'} at the median)"
    )
    if figures["first_error"]:
        print(f"    first error: {figures['first_error']}")
    return median


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=500, help="Cycles per submitter.")
    parser.add_argument("--submitters", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=8, help="CPUs of every submitter's pool.")
    args = parser.parse_args()
    print(f"claims: claim/release cycles, {args.cycles} per submitter, pool of {args.cpus} CPUs, on {machine()}")
    for submitters in (args.submitters, 1):
        # A fresh workspace each: the claim table and the WAL start alike.
        with temp_workspace("claims", keep=args.keep) as ws:
            figures = measure(ws, submitters, args.cycles, args.cpus)
        report(f"{submitters} submitter{'s' if submitters > 1 else ''}", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
