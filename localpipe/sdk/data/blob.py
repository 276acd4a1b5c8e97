"""Public Azure blob containers: ``Datastore.register_azure_blob_container`` with no credentials.

Such a container can be read by anyone over HTTPS (the Azure ML samples keep their data in some),
so it is a read-only datastore here. Its files are fetched on use through ``remote.fetch`` (the
machine's download cache, revalidated with their ETag, the copy used offline with a warning) and
linked into its mirror, ``<cache>/datastores/<sha256 of the container's url>/``, at their paths in
the container: the mirror is the datastore's folder for everything that reads one. A folder or a
glob is listed first with the Blob service's List Blobs call.

A URL of a folder of such a container, ``Dataset.File.from_files("https://{account}.blob.core.windows.net/{container}/{folder}")``,
is that folder of the container's mirror, listed and fetched the same way (``url_folder``), as Azure lists it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import warnings
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from localpipe.cache_dir import cache_root
from localpipe.errors import UsageError
from localpipe.sdk.data.remote import TIMEOUT_SECONDS, fetch

GLOB_CHARACTERS = "*?["


def container_url(account_name: str, container_name: str, protocol: str | None, endpoint: str | None) -> str:
    """The container's address as the SDK's storage client composes it."""
    return f"{protocol or 'https'}://{account_name}.blob.{endpoint or 'core.windows.net'}/{container_name}"


def mirror_folder(url: str) -> Path:
    return cache_root() / "datastores" / hashlib.sha256(url.encode()).hexdigest()[:32]


def bring(url: str, folder: Path, relative: str, caller: str) -> None:
    """Fetch the blobs that ``relative`` names (a file, a folder, a glob, or "" for all) into ``folder``.

    A path without a glob or a trailing "/" is first asked for as a file; a folder is listed."""
    relative = relative.strip().lstrip("/")
    pattern = relative if any(c in relative for c in GLOB_CHARACTERS) else None
    if pattern is None and relative and not relative.endswith("/"):
        try:
            _link(fetch(f"{url}/{quote(relative)}", caller), folder / relative)
            return
        except UsageError as error:
            if "answered HTTP 404" not in str(error):
                raise
    prefix = _literal_prefix(pattern) if pattern else (relative.rstrip("/") + "/" if relative else "")
    names = _listed(url, folder, prefix, caller)
    if names is None:  # offline: the mirror keeps what was fetched before
        return
    if pattern:
        names = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
    for name in names:  # the container's own words: checked before anything is written
        if not _stays_inside(name):
            raise UsageError(
                f'{caller}: "{url}" lists a blob named {name!r}, which leads out of the container\'s folder: '
                "the container cannot be read here"
            )
    for name in names:
        _link(fetch(f"{url}/{quote(name)}", caller), folder / name)
    for gone in set(_mirrored(folder, prefix)) - set(names):  # deleted from the container since
        if pattern is None or fnmatch.fnmatchcase(gone, pattern):
            os.unlink(folder / gone)


def url_folder(url: str, caller: str) -> str | None:
    """The local folder of the public container's folder that ``url`` names
    (``https://{account}.blob.{endpoint}/{container}/{folder}``), its blobs listed and fetched into the
    container's mirror (offline: the files fetched before); None when ``url`` names no such folder (not
    a blob address, nothing under it, or a container that cannot be listed)."""
    parts = urlsplit(url)
    container, _, relative = parts.path.lstrip("/").partition("/")
    relative = unquote(relative).strip("/")
    if ".blob." not in (parts.hostname or "") or not container or not relative or parts.query:
        return None
    base = f"{parts.scheme}://{parts.netloc}/{container}"
    folder = mirror_folder(base)
    try:
        bring(base, folder, relative + "/", caller)
    except UsageError:
        return None
    found = folder / relative
    return str(found) if found.is_dir() and any(found.iterdir()) else None


def _stays_inside(name: str) -> bool:
    """Whether the blob name ``name`` is a path below the mirror's folder (no "..", not absolute)."""
    return bool(name) and not name.startswith("/") and "\0" not in name and ".." not in name.split("/")


def _literal_prefix(pattern: str) -> str:
    cut = min(pattern.index(c) for c in GLOB_CHARACTERS if c in pattern)
    return pattern[:cut]


def _listed(url: str, folder: Path, prefix: str, caller: str) -> list[str] | None:
    """The names of the container's blobs that start with ``prefix`` (List Blobs, page by page);
    offline, None with a warning when the mirror holds some (an error when not)."""
    import urllib.request
    import xml.etree.ElementTree as ElementTree  # here: every pipeline file imports this module, few list blobs

    names: list[str] = []
    marker = ""
    try:
        while True:
            query = f"?restype=container&comp=list&prefix={quote(prefix, safe='')}"
            request = urllib.request.Request(url + query + (f"&marker={quote(marker)}" if marker else ""))
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                root = ElementTree.fromstring(response.read())
            names += [node.text for node in root.iter("Name") if node.text and not node.text.endswith("/")]
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return names
    except urllib.error.HTTPError as exc:
        raise UsageError(
            f'{caller}: listing "{url}" (prefix "{prefix}") answered HTTP {exc.code} ({exc.reason}): '
            "a container that allows only blob access cannot be listed: name its files one by one"
        ) from None
    except ElementTree.ParseError as exc:
        raise UsageError(f'{caller}: listing "{url}" gave no List Blobs answer ({exc}): check the address') from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if not _mirrored(folder, prefix):
            raise UsageError(
                f'{caller}: cannot list "{url}" (prefix "{prefix}": {reason}): check the address and the '
                "network, or name a file of the container"
            ) from None
        warnings.warn(f'{caller}: "{url}" cannot be reached ({reason}): using the files fetched before', stacklevel=4)
        return None


def _mirrored(folder: Path, prefix: str) -> list[str]:
    """The files of the mirror whose path starts with ``prefix``."""
    base = folder / prefix.rsplit("/", 1)[0] if "/" in prefix else folder
    found = (path.relative_to(folder).as_posix() for path in (base.rglob("*") if base.is_dir() else ()))
    return [name for name in found if name.startswith(prefix) and (folder / name).is_file()]


def _link(cached: str, dest: Path) -> None:
    """Make ``dest`` the cached file (a hard link; a new one after the cache's copy was replaced)."""
    if dest.is_file() and os.path.samefile(cached, dest):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    temporary = dest.with_name(f".link-{os.getpid()}-{dest.name}")
    try:
        os.link(cached, temporary)
    except OSError:  # another file system, or one without hard links
        import shutil

        shutil.copyfile(cached, temporary)
    os.replace(temporary, dest)
