"""The schema version of history.db, known without importing the ORM (``reader`` checks it)."""

# The migrations of ``db.MIGRATIONS``, by name: their count is the schema version a file must have.
MIGRATION_NAMES = (
    "0001_initial",
    "0002_resource_claims",
    "0003_dataset_lineage",
    "0004_git_info",
    "0005_output_files",
    "0006_environment_builds",
    "0007_workspace_settings",
    "0008_model_registry",
    "0009_run_properties",
    "0010_child_runs",
    "0011_experiment_archive",
    "0012_environment_labels",
    "0013_datastore_url",
    "0014_publishing",
    "0015_pipeline_drafts",
    "0016_saved_datasets",
    "0017_modules",
    "0018_saved_dataset_relative_paths",
    "0019_step_ran_because",
    "0020_retired_ids",
)
SCHEMA_VERSION = len(MIGRATION_NAMES)
