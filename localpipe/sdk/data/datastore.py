"""Datastores (named folders) and the SDK's older ways of pointing into them: DataReference, DataPath.

A datastore is a folder on this machine: ``workspaceblobstore`` and ``workspacefilestore`` inside the
workspace, or any folder given to ``Datastore.register_local``; or a public Azure blob container
(``register_azure_blob_container`` with no credentials), read-only, its files fetched on use into a
mirror folder (``blob.py``). The other cloud registrations of the SDK take its parameters and
refuse, writing nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from localpipe.errors import NotFoundError, UsageError, UserErrorException
from localpipe.sdk.data.blob import bring, container_url

BUILTIN_DATASTORES = ("workspaceblobstore", "workspacefilestore")
DEFAULT_DATASTORE = "workspaceblobstore"
DATA_REFERENCE_MODES = ("mount", "download", "upload")


class Datastore:
    """A named folder that datasets and outputs can live in; ``Datastore(ws)`` is the default one."""

    def __init__(self, workspace, name: str | None = None):
        self.workspace = workspace
        self.name = name or workspace.service.settings().get("default_datastore", DEFAULT_DATASTORE)
        location = workspace.service.datastore_location(self.name)
        if location is None:
            raise NotFoundError(
                f'datastore "{self.name}" is not registered in {workspace.root}: '
                "use Datastore.register_local(ws, name, path)"
            )
        folder, self.url = location  # a public blob container: its url, and its mirror as folder
        self.folder = Path(folder)

    @staticmethod
    def get(workspace, datastore_name: str) -> Datastore:
        """The datastore named ``datastore_name``."""
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace) -> Datastore:
        """The workspace's default datastore: ``workspaceblobstore`` unless ``set_as_default`` (or
        ``ws.set_default_datastore``) chose another."""
        return Datastore(workspace)

    def set_as_default(self) -> None:
        """Make this datastore the workspace's default (``ws.get_default_datastore()``, ``Datastore(ws)``)."""
        self.workspace.set_default_datastore(self.name)

    def unregister(self) -> None:
        """Forget this registered datastore: its folder and the files in it stay as they are. The
        built-in ones cannot be unregistered; when this one was the default, ``workspaceblobstore``
        is the default again."""
        if self.name in BUILTIN_DATASTORES:
            raise UserErrorException(
                f'datastore "{self.name}" is built into the workspace and cannot be unregistered: '
                "unregister only datastores registered with Datastore.register_local"
            )
        self.workspace.service.unregister_datastore(self.name)

    @classmethod
    def register_local(cls, workspace, name: str, path: str | os.PathLike) -> Datastore:
        """Register an existing local folder as a datastore called ``name``."""
        folder = Path(path).resolve()
        if not folder.is_dir():
            raise UsageError(f'datastore "{name}": {folder} is not a folder: create it or pass an existing one')
        if name in BUILTIN_DATASTORES:
            raise UsageError(f'datastore "{name}" is built in: choose another name')
        workspace.service.register_datastore(name, folder)
        return cls(workspace, name)

    # The SDK's cloud registrations, with its parameters: nothing is registered on one machine.
    @staticmethod
    def register_azure_blob_container(
        workspace,
        datastore_name,
        container_name,
        account_name,
        sas_token=None,
        account_key=None,
        protocol=None,
        endpoint=None,
        overwrite=False,
        create_if_not_exists=False,
        skip_validation=False,
        blob_cache_timeout=None,
        grant_workspace_access=False,
        subscription_id=None,
        resource_group=None,
    ):
        """A public container (no ``sas_token``, no ``account_key``): a read-only datastore whose files
        are fetched over HTTPS on use, from ``{protocol}://{account_name}.blob.{endpoint}/{container_name}``
        (https and core.windows.net by default). One with credentials is refused: localpipe does not
        talk to Azure storage with keys. The validation and access parameters have no local meaning."""
        if sas_token or account_key:
            raise UserErrorException(
                f'Datastore.register_azure_blob_container("{datastore_name}"): localpipe does not talk to '
                "Azure storage with keys or SAS tokens: register the container without them when it is "
                "public, or download its files and use Datastore.register_local(workspace, name, path)"
            )
        if datastore_name in BUILTIN_DATASTORES:
            raise UsageError(f'datastore "{datastore_name}" is built in: choose another name')
        url = container_url(account_name, container_name, protocol, endpoint)
        if not overwrite and datastore_name in workspace.service.datastore_names():
            existing = Datastore(workspace, datastore_name)
            if existing.url != url:
                raise UserErrorException(
                    f'datastore "{datastore_name}" is already registered (to {existing.url or existing.folder}): '
                    "pass overwrite=True to point it at this container"
                )
            return existing
        workspace.service.register_datastore(datastore_name, None, url)
        return Datastore(workspace, datastore_name)

    @staticmethod
    def register_azure_file_share(
        workspace,
        datastore_name,
        file_share_name,
        account_name,
        sas_token=None,
        account_key=None,
        protocol=None,
        endpoint=None,
        overwrite=False,
        create_if_not_exists=False,
        skip_validation=False,
    ):
        """Refused: an Azure file share is not on this machine (``Datastore.register_local``)."""
        _cloud_refused("register_azure_file_share", datastore_name, "an Azure file share")

    @staticmethod
    def register_azure_data_lake(
        workspace,
        datastore_name,
        store_name,
        tenant_id=None,
        client_id=None,
        client_secret=None,
        resource_url=None,
        authority_url=None,
        subscription_id=None,
        resource_group=None,
        overwrite=False,
        grant_workspace_access=False,
    ):
        """Refused: an Azure Data Lake is not on this machine (``Datastore.register_local``)."""
        _cloud_refused("register_azure_data_lake", datastore_name, "an Azure Data Lake")

    @staticmethod
    def register_azure_data_lake_gen2(
        workspace,
        datastore_name,
        filesystem,
        account_name,
        tenant_id=None,
        client_id=None,
        client_secret=None,
        resource_url=None,
        authority_url=None,
        protocol=None,
        endpoint=None,
        overwrite=False,
        subscription_id=None,
        resource_group=None,
        grant_workspace_access=False,
    ):
        """Refused: an Azure Data Lake Gen2 is not on this machine (``Datastore.register_local``)."""
        _cloud_refused("register_azure_data_lake_gen2", datastore_name, "an Azure Data Lake Gen2")

    @staticmethod
    def register_azure_sql_database(
        workspace,
        datastore_name,
        server_name,
        database_name,
        tenant_id=None,
        client_id=None,
        client_secret=None,
        resource_url=None,
        authority_url=None,
        endpoint=None,
        overwrite=False,
        username=None,
        password=None,
        subscription_id=None,
        resource_group=None,
        grant_workspace_access=False,
        **kwargs,
    ):
        """Refused: an Azure SQL database is not on this machine (``Datastore.register_local``)."""
        _cloud_refused("register_azure_sql_database", datastore_name, "an Azure SQL database")

    @staticmethod
    def register_azure_postgre_sql(
        workspace,
        datastore_name,
        server_name,
        database_name,
        user_id,
        user_password,
        port_number=None,
        endpoint=None,
        overwrite=False,
        enforce_ssl=True,
        **kwargs,
    ):
        """Refused: an Azure PostgreSQL database is not on this machine (``Datastore.register_local``)."""
        _cloud_refused("register_azure_postgre_sql", datastore_name, "an Azure PostgreSQL database")

    @staticmethod
    def register_azure_my_sql(
        workspace,
        datastore_name,
        server_name,
        database_name,
        user_id,
        user_password,
        port_number=None,
        endpoint=None,
        overwrite=False,
        **kwargs,
    ):
        """Refused: an Azure MySQL database is not on this machine (``Datastore.register_local``)."""
        _cloud_refused("register_azure_my_sql", datastore_name, "an Azure MySQL database")

    @staticmethod
    def register_dbfs(workspace, datastore_name):
        """Refused: Databricks' file system is not on this machine (``Datastore.register_local``)."""
        _cloud_refused("register_dbfs", datastore_name, "Databricks' file system")

    @staticmethod
    def register_hdfs(
        workspace,
        datastore_name,
        protocol,
        namenode_address,
        hdfs_server_certificate,
        kerberos_realm,
        kerberos_kdc_address,
        kerberos_principal,
        kerberos_keytab=None,
        kerberos_password=None,
        overwrite=False,
    ):
        """Refused: an HDFS cluster is not on this machine (``Datastore.register_local``)."""
        _cloud_refused("register_hdfs", datastore_name, "an HDFS cluster")

    # -- contents --------------------------------------------------------------------------------
    def upload(
        self,
        src_dir: str | os.PathLike,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Copy the files of ``src_dir`` into ``target_path`` of this datastore; a DataReference to it.

        Files already there are kept unless ``overwrite``; ``target_path`` must stay inside the datastore.
        """
        self.check_writable("upload")
        if not Path(src_dir).is_dir():
            raise UserErrorException(f'upload to datastore "{self.name}": {src_dir} is not a folder: pass a folder')
        files = [Path(folder, name) for folder, _, names in os.walk(src_dir) for name in names]
        self.workspace.service.upload(self.name, files, Path(src_dir), target_path or "", overwrite, show_progress)
        return DataReference(self, path_on_datastore=target_path or None)

    def upload_files(
        self,
        files: list,
        relative_root: str | None = None,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Copy ``files`` into ``target_path``, each at its path below ``relative_root`` (by default the
        folder they all lie in); a DataReference to ``target_path``."""
        self.check_writable("upload_files")
        paths = [Path(os.path.abspath(f)) for f in files]
        if not paths:
            raise UserErrorException(f'upload_files to datastore "{self.name}": no files given: pass a list of files')
        for path in paths:
            if not path.is_file():
                raise UserErrorException(f'upload_files: "{path}" is not a file: pass existing files')
        root = Path(os.path.abspath(relative_root)) if relative_root else Path(os.path.commonpath(paths))
        if root in paths:  # one file: its folder, as the SDK's common_path gives
            root = root.parent
        for path in paths:
            if path != root and root not in path.parents:  # is_relative_to is 3.9's; steps run 3.8
                raise UserErrorException(f"upload_files: relative_root '{root}' is not part of the file_path: '{path}'")
        self.workspace.service.upload(self.name, paths, root, target_path or "", overwrite, show_progress)
        return DataReference(self, path_on_datastore=target_path or None)

    def download(
        self, target_path: str | os.PathLike, prefix: str | None = None, overwrite: bool = False, show_progress=True
    ) -> int:
        """Copy the files whose path in the datastore starts with ``prefix`` (all by default) to
        ``target_path``, at their paths in the datastore; files already there are kept unless
        ``overwrite``. Returns how many were copied."""
        root = self.folder.resolve()
        wanted = prefix or ""
        while wanted.startswith(("./", "/")):  # "./a" and "/a" are "a"; ".a" stays ".a"
            wanted = wanted[1 if wanted.startswith("/") else 2 :]
        if self.url:
            bring(self.url, root, wanted if wanted.endswith("/") or not wanted else wanted + "*", "Datastore.download")
        os.makedirs(target_path, exist_ok=True)
        copied = 0
        for folder, _, names in os.walk(root):
            for name in sorted(names):
                source = Path(folder, name)
                relative = source.relative_to(root).as_posix()
                if not relative.startswith(wanted):
                    continue
                dest = Path(target_path, relative)
                if dest.exists() and not overwrite:
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)
                copied += 1
        if show_progress:
            print(f"Downloaded {copied} files from {self.name}:{prefix or '/'} to {target_path}")
        return copied

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataReference:
        """A DataReference to ``path`` in this datastore (the whole datastore by default)."""
        return DataReference(self).path(path, data_reference_name)

    def as_mount(self) -> DataReference:
        """The whole datastore as a step input, read-only and with no copy (deprecated in the SDK)."""
        return DataReference(self).as_mount()

    def as_download(self, path_on_compute: str | None = None) -> DataReference:
        """The whole datastore as a step input, copied into the step's folder (deprecated in the SDK)."""
        return DataReference(self).as_download(path_on_compute)

    def as_upload(self, path_on_compute: str | None = None):
        """Refused: a step writes outputs through OutputFileDatasetConfig here."""
        raise UserErrorException(_UPLOAD_REFUSED.format(what=f'datastore "{self.name}"'))

    def check_writable(self, caller: str) -> None:
        """An error naming ``caller`` when this is a public blob container, which is read-only."""
        if self.url:
            raise UserErrorException(
                f'{caller}: datastore "{self.name}" is a public blob container ({self.url}), read-only here: '
                "write to a local datastore (ws.get_default_datastore())"
            )

    def __eq__(self, other) -> bool:
        return isinstance(other, Datastore) and (self.name, self.folder) == (other.name, other.folder)

    def __hash__(self) -> int:
        return hash((self.name, self.folder))

    def __repr__(self) -> str:
        if self.url:
            return f"Datastore({self.name!r}, url={self.url!r})"
        return f"Datastore({self.name!r}, folder={str(self.folder)!r})"


_UPLOAD_REFUSED = (
    "{what}: as_upload() is not supported by localpipe: write outputs through "
    'OutputFileDatasetConfig(destination=(datastore, "path")) instead'
)


def _cloud_refused(method: str, name, what: str) -> None:
    raise UserErrorException(
        f'Datastore.{method}("{name}"): {what} is not on this machine; a local datastore is a folder: '
        f"Datastore.register_local(workspace, name, path)"
    )


def datastore_file(store: Datastore, relative, caller: str) -> str:
    """The absolute path of ``relative`` inside ``store``; an error when it leaves the datastore.
    A public blob container's files are fetched into its mirror first."""
    root = store.folder.resolve()
    target = os.path.normpath(os.path.join(root, str(relative or "").lstrip("/")))
    if target != str(root) and not target.startswith(str(root) + os.sep):
        raise UserErrorException(f'{caller}: path "{relative}" leaves datastore "{store.name}": use a path inside it')
    if store.url:
        wanted = os.path.relpath(target, root).replace(os.sep, "/")
        folder_like = wanted == "." or str(relative).endswith("/")
        bring(store.url, root, "" if wanted == "." else wanted + ("/" if folder_like else ""), caller)
    return target


def datastore_target(store: Datastore, relative, caller: str) -> str:
    """``datastore_file`` for a write: a path that does not lead out of the datastore through a link
    (a link inside it to a folder outside, say)."""
    target = datastore_file(store, relative, caller)
    real = os.path.realpath(target)
    if not real.startswith(os.path.realpath(store.folder) + os.sep):
        raise UsageError(
            f'{caller}: path "{relative}" leads to {real}, out of datastore "{store.name}", through a link: '
            "remove the link, or choose another path"
        )
    return target


class DataReference:
    """A path in a datastore consumed by a step: mounted (read-only, no copy) or downloaded (a copy).

    Without ``data_reference_name`` its input name is a digest of where it points (the SDK draws a
    random one), so that the same reference keeps the same name, and cache key, in every run.
    """

    def __init__(
        self,
        datastore: Datastore,
        data_reference_name: str | None = None,
        path_on_datastore: str | None = None,
        mode: str = "mount",
        path_on_compute: str | None = None,
        overwrite: bool = False,
    ):
        if not isinstance(datastore, Datastore):
            raise UserErrorException(f"DataReference: datastore {datastore!r} is not a Datastore: pass one")
        if mode not in DATA_REFERENCE_MODES:
            raise UserErrorException(f"Invalid mode {mode}. Only mount, download, upload are supported")
        self.datastore = datastore
        self.path_on_datastore = path_on_datastore
        self.mode = mode
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite
        if not data_reference_name:
            if path_on_datastore and not _is_current(path_on_datastore):
                data_reference_name = hashlib.md5(f"{datastore.name}/{path_on_datastore}".encode()).hexdigest()
            else:
                data_reference_name = datastore.name
        self.data_reference_name = data_reference_name

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataReference:
        """A DataReference to ``path`` below this one."""
        if not path or _is_current(path):
            return DataReference(self.datastore, data_reference_name) if data_reference_name else self
        if self.path_on_datastore and not _is_current(self.path_on_datastore):
            path = f"{self.path_on_datastore}/{path}"
        return DataReference(self.datastore, data_reference_name, path)

    def as_download(self, path_on_compute: str | None = None, overwrite: bool = False) -> DataReference:
        """Copy the data into the step's folder (at ``path_on_compute`` there, when given)."""
        return self._with(mode="download", path_on_compute=path_on_compute)

    def as_mount(self) -> DataReference:
        """Give the step a read-only path to the data, with no copy."""
        return self._with(mode="mount")

    def as_upload(self, path_on_compute: str | None = None, overwrite: bool = False):
        """Refused: a step writes outputs through OutputFileDatasetConfig here."""
        raise UserErrorException(_UPLOAD_REFUSED.format(what=f'DataReference "{self.data_reference_name}"'))

    def to_config(self) -> DataReferenceConfiguration:
        """The SDK's DataReferenceConfiguration of this reference (``RunConfiguration.data_references``)."""
        return DataReferenceConfiguration(
            datastore_name=self.datastore.name,
            mode=self.mode,
            path_on_datastore=None if _is_current(self.path_on_datastore) else self.path_on_datastore,
            path_on_compute=self.path_on_compute,
            overwrite=self.overwrite,
            reference=self,
        )

    @staticmethod
    def create(data_reference_name=None, datapath=None, datapath_compute_binding=None) -> DataReference:
        """The DataReference of ``datapath`` bound to a step by ``datapath_compute_binding``."""
        if datapath is None or datapath_compute_binding is None:
            raise ValueError("datapath and datapath_compute_binding are expected parameters")
        return DataReference(
            datapath._datastore,
            data_reference_name,
            datapath._path_on_datastore,
            datapath_compute_binding._mode,
            datapath_compute_binding._path_on_compute,
            datapath_compute_binding._overwrite,
        )

    def local_path(self) -> str:
        """Where the data is on this machine."""
        return datastore_file(self.datastore, self.path_on_datastore, f'DataReference "{self.data_reference_name}"')

    def _with(self, **changes) -> DataReference:
        values = {
            "datastore": self.datastore,
            "data_reference_name": self.data_reference_name,
            "path_on_datastore": self.path_on_datastore,
            "mode": self.mode,
            "path_on_compute": self.path_on_compute,
            "overwrite": self.overwrite,
        }
        return DataReference(**{**values, **changes})

    def _key(self) -> tuple:
        return (self.datastore, self.data_reference_name, self.path_on_datastore, self.mode, self.path_on_compute)

    def __eq__(self, other) -> bool:
        return isinstance(other, DataReference) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.data_reference_name}"

    __repr__ = __str__


@dataclass(frozen=True)
class DataReferenceConfiguration:
    """``DataReference.to_config()``: the SDK's fields, and the reference it describes (which a script
    run's ``RunConfiguration.data_references`` gives its step)."""

    datastore_name: str
    mode: str
    path_on_datastore: str | None
    path_on_compute: str | None
    overwrite: bool
    reference: DataReference | None = field(default=None, compare=False, repr=False)


def _is_current(path: str | None) -> bool:
    return path in ("/", ".", "./")


class DataPath:
    """A path in a datastore, the value of a PipelineParameter a submission can change."""

    def __init__(self, datastore: Datastore | None = None, path_on_datastore: str | None = None, name=None):
        if datastore is None:
            raise ValueError("datastore parameter is required.")
        if not isinstance(datastore, Datastore):
            raise UserErrorException(f"DataPath: datastore {datastore!r} is not a Datastore: pass one")
        self._datastore = datastore
        self._path_on_datastore = path_on_datastore
        self._name = name

    @property
    def datastore_name(self) -> str:
        """The name of the datastore the path is on."""
        return self._datastore.name

    @property
    def path_on_datastore(self) -> str | None:
        """The path inside the datastore (None: the whole datastore)."""
        return self._path_on_datastore

    def create_data_reference(self, data_reference_name=None, datapath_compute_binding=None) -> DataReference:
        """A DataReference to this path, bound by ``datapath_compute_binding`` (mount by default)."""
        return DataReference.create(data_reference_name, self, datapath_compute_binding or DataPathComputeBinding())

    @staticmethod
    def create_from_data_reference(data_reference: DataReference) -> DataPath:
        """The DataPath of ``data_reference``: its datastore, path and name."""
        return DataPath(data_reference.datastore, data_reference.path_on_datastore, data_reference.data_reference_name)

    def local_path(self) -> str:
        """Where the data is on this machine."""
        return datastore_file(self._datastore, self._path_on_datastore, "DataPath")

    def describe(self) -> dict:
        """Plain data for the run's record."""
        return {"datastore": self._datastore.name, "path_on_datastore": self._path_on_datastore}

    def __eq__(self, other) -> bool:
        return isinstance(other, DataPath) and (self._datastore, self._path_on_datastore) == (
            other._datastore,
            other._path_on_datastore,
        )

    def __hash__(self) -> int:
        return hash((self._datastore, self._path_on_datastore))

    def __repr__(self) -> str:
        return f"DataPath({self._datastore.name!r}, {self._path_on_datastore!r})"


class DataPathComputeBinding:
    """How a step consumes a DataPath: ``mode`` mount (read-only, no copy) or download (a copy)."""

    def __init__(self, mode: str = "mount", path_on_compute: str | None = None, overwrite: bool = False):
        if mode not in ("mount", "download"):
            raise UserErrorException(f"DataPathComputeBinding: invalid mode {mode!r}: use mount or download")
        self._mode = mode
        self._path_on_compute = path_on_compute
        self._overwrite = overwrite

    def create_data_reference(self, data_reference_name=None, datapath=None) -> DataReference:
        """A DataReference to ``datapath`` with this binding's mode and path on compute."""
        return DataReference.create(data_reference_name, datapath, self)

    @staticmethod
    def create_from_data_reference(data_reference: DataReference) -> DataPathComputeBinding:
        """The binding of ``data_reference``: its mode (mount, download), path on compute and overwrite."""
        return DataPathComputeBinding(data_reference.mode, data_reference.path_on_compute, data_reference.overwrite)

    def __repr__(self) -> str:
        return f"DataPathComputeBinding(mode={self._mode!r})"
