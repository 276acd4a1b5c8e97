"""Files named by an http(s) URL (``Dataset.File.from_files("https://...")``, as the Azure ML
samples read their public data), fetched into the machine's cache and revalidated on each use.

A URL's file is kept in ``<cache>/downloads/<sha256 of the URL>/<its name>`` with the validators
the server gave (ETag, Last-Modified). On the next use it is asked again with those validators:
``304 Not Modified`` keeps the copy, a new body replaces it (through a temporary file renamed into
place, so a reader never sees half a file). Without a network the cached copy is used, with a
warning; a URL never fetched then fails with one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit

from localpipe.cache_dir import cache_root
from localpipe.errors import UsageError

URL_SCHEMES = ("http://", "https://")
TIMEOUT_SECONDS = 30
CHUNK = 1 << 20


def is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(URL_SCHEMES)


def fetch(url: str, caller: str) -> str:
    """The local path of ``url``'s file, fetched or revalidated now."""
    folder = cache_root() / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:32]
    target = folder / _file_name(url)
    meta_path = folder.with_name(folder.name + ".json")  # beside the folder: a file may be named meta.json
    meta = _read_meta(meta_path) if target.is_file() else {}
    import urllib.error  # here, not at the top: http.client is tens of ms of every command's start
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "localpipe"})
    if meta.get("etag"):
        request.add_header("If-None-Match", meta["etag"])
    if meta.get("last_modified"):
        request.add_header("If-Modified-Since", meta["last_modified"])
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            _store(response, folder, target)
            headers = response.headers
            meta = {"url": url, "etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
            meta_path.write_text(json.dumps(meta))
    except urllib.error.HTTPError as exc:
        if exc.code != 304 or not target.is_file():
            raise UsageError(f'{caller}: "{url}" answered HTTP {exc.code} ({exc.reason}): check the address') from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if not target.is_file():
            raise UsageError(
                f'{caller}: cannot download "{url}" ({reason}): check the address and the network, '
                "or download it yourself and pass its local path"
            ) from None
        warnings.warn(f'{caller}: "{url}" cannot be reached ({reason}): using the copy fetched before', stacklevel=3)
    return str(target)


def _file_name(url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name if name not in ("", ".", "..") and "/" not in name and "\0" not in name else "download"


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _store(response, folder: Path, target: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".download-")
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
