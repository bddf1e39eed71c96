"""Known weights, where they live on the Hugging Face Hub, and how a name resolves to a file.

Every entry pins a revision and the file's sha256; a download that does not match is deleted.
Resolution order: an existing path → a known name (bundled, or downloaded into the HF cache) →
the bundled default.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import HFDError

DEFAULT_NAME = "hfd-small"


@dataclass(frozen=True)
class KnownWeights:
    name: str
    repo_id: str
    revision: str  # pinned: a tag or commit of the Hub repository
    filename: str
    sha256: str
    size: int  # bytes
    description: str
    bundled: bool = False  # shipped inside the package
    published: bool = True  # uploaded to the Hub at ``revision``; never list a download that isn't there


KNOWN_WEIGHTS: dict[str, KnownWeights] = {
    entry.name: entry
    for entry in (
        KnownWeights(
            name="hfd-small", repo_id="hfdinterp/hfd-small", revision="v0.6.0", filename="hfd-small.safetensors",
            sha256="06a7d57a104f6f57bf1a1785fa7cc89868d38ddbcf3430adcf5f787d669c5f77", size=4928132,
            description="small preset, CPU-friendly; bundled with the package", bundled=True, published=False,
        ),
    )
}


def bundled_dir() -> Path:
    return Path(str(resources.files("hfdinterp.weights")))


def bundled_path(name: str = DEFAULT_NAME) -> Path:
    return bundled_dir() / f"{name}.safetensors"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def cached_path(entry: KnownWeights) -> Path | None:
    """The downloaded file in the HF cache, or None (never touches the network)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(entry.repo_id, entry.filename, revision=entry.revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None


def _reachable(endpoint: str, timeout: float = 5.0) -> bool:
    """A TCP connection to the endpoint's host opens: fail fast instead of retrying for half a minute."""
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def download(entry: KnownWeights, force: bool = False) -> Path:
    """Fetch ``entry`` at its pinned revision into the HF cache and check its sha256."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    if not entry.published:
        raise HFDError(f"{entry.name} is not published on the Hub yet"
                       + (" (it is bundled with hfdinterp: nothing to download)" if entry.bundled else ""))
    if _offline():
        path = cached_path(entry)
        if path is None:
            raise HFDError(f"{entry.name}: HF_HUB_OFFLINE is set and the file is not in the cache")
        return path
    endpoint = _endpoint() or "https://huggingface.co"
    unreachable = HFDError(f"{entry.name}: cannot reach the Hub at {endpoint}; check the network, "
                           "or set HF_ENDPOINT to a mirror")
    if not _reachable(endpoint):
        raise unreachable
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)  # its retry chatter would bury our one line
    try:
        path = Path(hf_hub_download(entry.repo_id, entry.filename, revision=entry.revision,
                                    force_download=force, endpoint=_endpoint(), etag_timeout=10))
    except LocalEntryNotFoundError:
        raise unreachable from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as error:
        raise HFDError(f"{entry.name}: {entry.repo_id}@{entry.revision}/{entry.filename} is not on the Hub "
                       f"({type(error).__name__})") from None
    except (HfHubHTTPError, OSError) as error:
        raise HFDError(f"{entry.name}: download failed ({str(error).splitlines()[0]})") from None
    finally:
        hub_logger.setLevel(level)
    actual = sha256_of(path)
    if actual != entry.sha256:
        _remove_download(path)
        raise HFDError(f"{entry.name}: checksum mismatch (expected sha256 {entry.sha256[:12]}…, got "
                       f"{actual[:12]}…); the file was removed")
    return path


def _remove_download(path: Path) -> None:
    """Delete a rejected file: the cache's snapshot link and the blob it points to."""
    target = path.resolve()
    path.unlink(missing_ok=True)
    if target != path:
        target.unlink(missing_ok=True)


def resolve_weights(spec: str | os.PathLike | None) -> Path:
    """``--weights`` value → a file on disk, or a clear error that says what to do."""
    if spec is not None and (Path(spec).exists() or str(spec).endswith(".safetensors") or os.sep in str(spec)):
        return Path(spec)
    name = str(spec) if spec is not None else DEFAULT_NAME
    entry = KNOWN_WEIGHTS.get(name)
    if entry is None:
        known = ", ".join(sorted(KNOWN_WEIGHTS))
        raise HFDError(f"'{name}' is neither a weights file nor a known name ({known})")
    if entry.bundled and bundled_path(name).is_file():
        return bundled_path(name)
    path = cached_path(entry)
    if path is not None:
        return path
    if entry.bundled:
        raise HFDError(f"the bundled weights {bundled_path(name)} are missing from this installation; "
                       f"reinstall hfdinterp or run: hfdinterp download-weights {name}")
    raise HFDError(f"weights '{name}' are not downloaded yet; run: hfdinterp download-weights {name}")
