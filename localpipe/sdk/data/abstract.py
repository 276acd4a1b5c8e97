"""What FileDataset and TabularDataset share, as the SDK's AbstractDataset gives it: a registered
version's metadata (``id``, ``description``, ``tags``, ``update``, ``add_tags`` ...), the class methods
that find registered datasets, and the partition keys a ``partition_format`` names.

A registered version's ``id`` is a GUID fixed at registration (``state/datasets.py``); a dataset
that is not registered has none (None) until a submission uses it, which saves it and gives it one,
as in the SDK.
"""

from __future__ import annotations

import datetime
import os

import localpipe.sdk.data.partitions as partitions
from localpipe.errors import UserErrorException
from localpipe.sdk.data.expressions import Expression, column


class Registration:
    """A registered version's record, and the workspace it is registered in. Changed in place by
    ``update``, ``add_tags`` and ``remove_tags``, as the SDK changes the dataset it is called on."""

    def __init__(self, workspace, record: dict):
        self.workspace = workspace
        self.id: str = record["id"]
        self.description: str | None = record.get("description")
        self.tags: dict = dict(record.get("tags") or {})
        self.created_at: float = record["created_at"]

    def refresh(self, record: dict) -> None:
        self.description, self.tags = record.get("description"), dict(record.get("tags") or {})


class AbstractDataset:
    """The SDK's AbstractDataset members of FileDataset and TabularDataset (a mixin of those dataclasses)."""

    # Set on the dataset a submission saved (not a field: a dataset derived from it is another definition).
    _saved_id: str | None = None
    # definition_id(), once computed: planning names it and the submission saves under it.
    _definition_id: str | None = None

    # -- a registered version's metadata ---------------------------------------------------------------
    @property
    def id(self) -> str | None:
        """The registered version's GUID, or the one a submission that used this dataset saved it under;
        None for a dataset neither registered nor used."""
        return self.registration.id if self.registration else self._saved_id

    def _saved_as(self, saved_id: str) -> None:
        object.__setattr__(self, "_saved_id", saved_id)  # the dataclass is frozen

    @property
    def description(self) -> str | None:
        """The registered version's description (None for a dataset not registered)."""
        return self.registration.description if self.registration else None

    @property
    def tags(self) -> dict | None:
        """The registered version's tags (None for a dataset not registered)."""
        return self.registration.tags if self.registration else None

    @property
    def data_changed_time(self) -> datetime.datetime | None:
        """When the data last changed (UTC): a registered version's when it was registered (its files
        are a fixed copy), another dataset's when its newest file was written (None with no file)."""
        if self.registration:
            changed = self.registration.created_at
        else:
            times = [os.stat(f).st_mtime for f in self.files()]
            if not times:
                return None
            changed = max(times)
        return datetime.datetime.fromtimestamp(changed, datetime.timezone.utc)  # noqa: UP017  (steps may run on Python 3.8-3.10, which lack datetime.UTC)

    def update(self, description: str | None = None, tags: dict | None = None):
        """Replace the registered version's description and tags (None keeps one; "" and {} clear);
        returns the updated dataset."""
        registration = self._registered("To update this dataset it must be registered.")
        return self._apply(registration, description, None if tags is None else dict(tags))

    def add_tags(self, tags: dict | None = None):
        """Add ``tags`` to the registered version's tags; a key it has with another value is an error."""
        registration = self._registered("To add tags to this dataset it must be registered.")
        tags = dict(tags or {})
        clashing = [key for key in tags if key in registration.tags and registration.tags[key] != tags[key]]
        if clashing:
            raise UserErrorException(
                f"Dataset already contains different values for tags with the following keys {clashing}"
            )
        return self._apply(registration, None, {**registration.tags, **tags})

    def remove_tags(self, tags: list | None = None):
        """Remove the keys ``tags`` from the registered version's tags."""
        registration = self._registered("To remove tags from this dataset it must be registered.")
        removed = set(tags or ())
        return self._apply(registration, None, {k: v for k, v in registration.tags.items() if k not in removed})

    def unregister_all_versions(self) -> None:
        """Forget every registered version of this dataset's name (nothing if it is not registered);
        the files stay where they came from (and the registered copies until ``localpipe gc``)."""
        if self.registration is None or self.name is None:
            return
        self.registration.workspace.service.unregister_dataset(self.name)
        for field in ("registration", "name", "version"):  # as the SDK forgets its registration
            object.__setattr__(self, field, None)

    def _registered(self, message: str) -> Registration:
        if self.registration is None:
            raise UserErrorException(message)
        return self.registration

    # -- partitions and expressions --------------------------------------------------------------------
    @property
    def partition_keys(self) -> list[str]:
        """The keys ``partition_format`` names ([] without one)."""
        return partitions.keys(self.partition_format)

    def get_partition_key_values(self, partition_keys: list | None = None) -> list[dict]:
        """Each distinct combination of the values of ``partition_keys`` (all of them by default) among
        the dataset's files that are not empty, in file order: ``[{"user": "u1", "season": "spring"}]``."""
        if not self.partition_keys:
            raise UserErrorException("cannot retrieve partition key values for a dataset that has no partition keys")
        partition_keys = list(partition_keys or self.partition_keys)
        invalid = [key for key in partition_keys if key not in self.partition_keys]
        if invalid:
            raise UserErrorException(f"{invalid} are invalid partition keys")
        found: list[dict] = []
        for path in self.files():
            if os.path.getsize(path) > 0:
                values = partitions.values(self.partition_format, path)
                combination = {key: values[key] for key in partition_keys}
                if combination not in found:
                    found.append(combination)
        return found

    def __getitem__(self, key: str) -> Expression:
        """A column, to build a ``filter`` expression: ``dataset["age"] > 30``."""
        return column(key)
