"""ParallelRunStep's process: the driver that splits the input into mini-batches, its worker
processes that call the entry script's ``init()`` and ``run(mini_batch)``, and the per-batch cache.

It runs in the step's own environment (a built one, an interpreter, a container), so it imports
nothing of localpipe but the base and, to read tables, ``sdk.data.tables`` (docs/parallel-run.md).
"""
