"""Data declarations: datastores, datasets, pipeline data and the ways a step consumes them.

A data object used in a step's ``arguments``, ``inputs`` or ``outputs`` is a *data reference*:
planning turns each into a named input or output of the step and, in the arguments, into the
path the step reads or writes at run time. ``datastore.py``: datastores, DataReference, DataPath;
``datasets.py``: FileDataset, TabularDataset (their shared members in ``abstract.py``, tabular filters
and time series in ``tabular_ops.py``, filter expressions in ``expressions.py``, partition keys in
``partitions.py``); ``factories.py``: ``Dataset.File`` and ``Dataset.Tabular``; ``pipeline_data.py``: data passed
between steps; ``tables.py``: reading a table with pandas.
"""

from localpipe.sdk.data.datasets import (
    DatasetConsumptionConfig,
    FileDataset,
    MountContext,
    TabularDataset,
    dataset_from_record,
    tabular_dataset,
)
from localpipe.sdk.data.datastore import (
    BUILTIN_DATASTORES,
    DataPath,
    DataPathComputeBinding,
    DataReference,
    Datastore,
)
from localpipe.sdk.data.factories import Dataset, FileDatasetFactory, TabularDatasetFactory
from localpipe.sdk.data.pipeline_data import (
    OutputFileDatasetConfig,
    PipelineData,
    PipelineDataInput,
    PipelineOutputFileDataset,
    TabularOutput,
)

__all__ = [
    "BUILTIN_DATASTORES",
    "DataPath",
    "DataPathComputeBinding",
    "DataReference",
    "Dataset",
    "DatasetConsumptionConfig",
    "Datastore",
    "FileDataset",
    "FileDatasetFactory",
    "MountContext",
    "OutputFileDatasetConfig",
    "PipelineData",
    "PipelineDataInput",
    "PipelineOutputFileDataset",
    "TabularDataset",
    "TabularDatasetFactory",
    "TabularOutput",
    "dataset_from_record",
    "tabular_dataset",
]
