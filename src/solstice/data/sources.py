"""Dataset sources and their resolution.

A paper declares each file it reads as a `DataSource`: where it lies inside SOLSTICE_DATA (a folder;
default ~/.cache/solstice/data), where it comes from (a URL with a pinned revision, or a hub file
at a pinned revision) and its sha256 when known. `resolve` finds it, or downloads it into the cache
and checks the checksum, or raises a one-line DataError.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solstice.errors import DataError, DataUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSource:
    name: str
    path: str
    url: str | None = None
    hub: tuple[str, str, str] | None = None  # (repo_id, filename, revision) of a hub dataset repo
    sha256: str | None = None
    revision: str | None = None
    license: str = ""
    description: str = ""

    @property
    def origin(self) -> str:
        if self.hub:
            return f"hf://datasets/{self.hub[0]}/{self.hub[1]}@{self.hub[2]}"
        return self.url or "the paper's release (see the paper README)"


def data_root() -> Path:
    env = os.environ.get("SOLSTICE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "solstice" / "data"


def cache_dir() -> Path:
    return Path(os.environ.get("SOLSTICE_CACHE", Path.home() / ".cache" / "solstice")) / "data"


_SHA_CACHE: dict[tuple[str, int, float], str] = {}


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def path_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's sorted (relative path, file sha256) listing."""
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}\t{file_sha256(f)}\n".encode())
    return h.hexdigest()


def _download(src: DataSource, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    if src.hub:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as exc:
            raise DataError(f"dataset '{src.name}' needs huggingface_hub to download") from exc
        repo, filename, revision = src.hub
        got = hf_hub_download(repo, filename, repo_type="dataset", revision=revision)
        import shutil

        shutil.copyfile(got, tmp)
    else:
        import httpx

        with httpx.stream("GET", src.url, follow_redirects=True, timeout=60) as r:
            r.raise_for_status()
            with open(tmp, "wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
    if src.sha256 and file_sha256(tmp) != src.sha256:
        tmp.unlink()
        raise DataError(f"dataset '{src.name}' downloaded from {src.origin} does not match its sha256")
    tmp.rename(dest)


def resolve(src: DataSource, *, download: bool = True) -> Path:
    """The local path of a dataset file or folder (see module docstring)."""
    root = data_root()
    for base in (root, cache_dir()):
        p = base / src.path
        if p.exists():
            return p
    where = f"{root / src.path}"
    if download and (src.url or src.hub):
        dest = cache_dir() / src.path
        try:
            _download(src, dest)
            return dest
        except DataError:
            raise
        except Exception as exc:  # network errors of any library
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise DataUnavailable(
                f"dataset '{src.name}' ({src.path}) is not under SOLSTICE_DATA and downloading it from "
                f"{src.origin} failed ({reason}); place the file at {where}"
            ) from None
    raise DataUnavailable(
        f"dataset '{src.name}' ({src.path}) is not under SOLSTICE_DATA; get it from {src.origin} "
        f"and place it at {where}"
    )


def dataset_info(src: DataSource, path: Path | None = None) -> dict[str, Any]:
    """What a run record stores about a dataset: name, path, revision, sha256."""
    p = path or resolve(src)
    digest = path_sha256(p)
    if src.sha256 and p.is_file() and digest != src.sha256:
        raise DataError(f"dataset '{src.name}' at {p} does not match its recorded sha256")
    return {
        "name": src.name,
        "path": src.path,
        "origin": src.origin,
        "revision": src.revision,
        "sha256": digest,
        "license": src.license,
    }
