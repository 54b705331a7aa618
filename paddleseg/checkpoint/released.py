"""Released weights by URL or by name: downloaded once into a verified cache, then read from there.

Every place that takes weights (``--model_path``, ``--finetune_from``, ``model.pretrained``,
``load_entire_model``) goes through :func:`paddleseg.checkpoint.weights.resolve_weights_path`, which
turns an ``http(s)://`` URL or a name of :data:`RELEASED` into a local file with :func:`fetch`; the
file is then read by the safe loader like any other.

The cache is ``$PADDLESEG_HOME/weights`` (default ``~/.cache/paddleseg/weights``, under
``$XDG_CACHE_HOME`` when that is set), one folder per URL. A download streams to a temporary file in
that folder, is checked against the server's Content-Length, and is renamed to its final name only
when complete, so an HTTP error, a dropped connection or a short body never leaves a file under the
final name. Its SHA-256 is written beside it (``model.pdparams.sha256``) before the rename. A later
use hashes the cached file and compares: a match is used without touching the network; a mismatch
(the file changed since it was downloaded) is an error naming the file and how to delete it, not a
silent re-download, because a changed file in the cache means something other than this code wrote
there. Two processes downloading the same URL at once each write their own temporary file and the
same bytes land under the final name.

Only the standard library speaks HTTP (``urllib.request``) and every request has a timeout.
"""
import difflib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from tqdm import tqdm

from paddleseg.errors import CheckpointError

HOME_ENV = "PADDLESEG_HOME"
DIGEST_SUFFIX = ".sha256"
TIMEOUT = 60.0  # seconds without data before a download fails
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ReleasedModel:
    """A published checkpoint: its direct download URL (None when it is published only behind a page
    that needs a person, ``page``), the config it belongs to and what it scores (Cityscapes val mIoU,
    as published)."""

    url: Optional[str]
    config: str
    miou: float
    origin: str
    page: str = ""


RELEASED: Dict[str, ReleasedModel] = {
    "espnetv2_cityscapes_upstream": ReleasedModel(
        # as PaddleSeg's configs/espnet/README.md publishes it (the folder is named espnet_, not espnetv2_)
        url="https://bj.bcebos.com/paddleseg/dygraph/cityscapes/espnet_cityscapes_1024x512_120k/model.pdparams",
        config="configs/espnetv2/espnetv2_cityscapes_1024x512_120k.yml", miou=70.88,
        origin="upstream PaddleSeg's released ESPNetV2 Cityscapes model"),
    # The reference reproduction (EspnetV2_paddle) publishes its checkpoint on a Baidu Netdisk share with
    # an extraction code, which needs a person and a browser: there is no direct URL to download.
    "espnetv2_cityscapes_reproduction": ReleasedModel(
        url=None, config="configs/espnet_cityscapes_1024_512_120k_x2.yml", miou=69.56,
        origin="the reference reproduction's released checkpoint",
        page="https://pan.baidu.com/s/106sZZUW3UWF61EegHhrQRQ (extraction code u6vk)"),
}


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def cache_root() -> Path:
    """``$PADDLESEG_HOME/weights``, else ``$XDG_CACHE_HOME/paddleseg/weights`` (``~/.cache`` when unset)."""
    home = os.environ.get(HOME_ENV)
    if not home:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "paddleseg"
    return Path(home) / "weights"


def cached_path(url: str) -> Path:
    """Where ``url`` is cached: a folder per URL (so two ``model.pdparams`` never collide), the URL's
    file name inside."""
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "weights.pdparams"
    return cache_root() / hashlib.sha256(url.encode("utf-8")).hexdigest()[:16] / name


def known_names() -> str:
    return ", ".join(sorted(RELEASED))


def name_hint(text: str) -> str:
    """For a weights argument that is neither a file nor a URL: the released names, if it looks like one."""
    if "/" in text or os.sep in text or "." in Path(text).name:
        return ""
    close = difflib.get_close_matches(text, list(RELEASED), n=3, cutoff=0.5)
    mean = f" Did you mean: {', '.join(close)}?" if close else ""
    return (f"; nor is it a released model name.{mean} Released models: {known_names()}; "
            f"or give an http(s):// URL")


def released_weights(name: str, timeout: float = TIMEOUT) -> Path:
    """The local file of the released model ``name`` (downloaded on first use)."""
    model = RELEASED[name]
    if model.url is None:
        raise CheckpointError(
            f"{name}: {model.origin} (config {model.config}, {model.miou}% mIoU) is published without a direct "
            f"download URL, at {model.page}: download model.pdparams from there and pass the local file "
            f"instead of the name")
    return fetch(model.url, timeout=timeout)


def fetch(url: str, timeout: float = TIMEOUT) -> Path:
    """The cached file of ``url``: verified against its recorded SHA-256 if cached, else downloaded."""
    path = cached_path(url)
    if path.exists():
        verify_cached(path, url)
        return path
    return download(url, path, timeout)


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            sha.update(block)
    return sha.hexdigest()


def verify_cached(path: Path, url: str) -> None:
    """Raise :class:`CheckpointError` unless ``path`` still has the digest recorded at its download."""
    sidecar = path.with_name(path.name + DIGEST_SUFFIX)
    remove = f"delete {path} and {sidecar} (or the folder {path.parent}) to download {url} again"
    try:
        recorded = sidecar.read_text(encoding="ascii").split()[0]
    except (OSError, IndexError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cached download has no readable digest record {sidecar} ({e}); "
                              f"{remove}") from e
    try:
        actual = file_digest(path)
    except OSError as e:
        raise CheckpointError(f"{path}: cached download cannot be read ({e.strerror or e}); {remove}") from e
    if actual != recorded:
        raise CheckpointError(f"{path}: cached download changed since it was downloaded (SHA-256 {actual}, "
                              f"recorded {recorded}); {remove}")


def download(url: str, path: Path, timeout: float = TIMEOUT) -> Path:
    """Stream ``url`` to ``path`` through a temporary file, with a progress bar on stderr; record its
    SHA-256 beside it. Any failure is a :class:`CheckpointError` and leaves nothing at ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"{path.parent}: cannot create the download cache ({e.strerror or e}); "
                              f"set {HOME_ENV} to a writable folder") from e
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _stream(url, out, timeout)
            out.flush()
            os.fsync(out.fileno())
        sidecar = path.with_name(path.name + DIGEST_SUFFIX)
        _write_atomic(sidecar, f"{digest}  {path.name}\n")
        os.replace(tmp, path)
    except OSError as e:
        raise CheckpointError(f"{url}: cannot store the download in {path.parent} ({e.strerror or e})") from e
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _stream(url: str, out, timeout: float) -> str:
    """Copy the body of ``url`` into ``out``; the SHA-256 of what was written."""
    sha = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) only, checked)
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                      desc=f"downloading {url.rsplit('/', 1)[-1]}", leave=False) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    sha.update(block)
                    received += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        raise CheckpointError(f"{url}: download failed: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise CheckpointError(f"{url}: download failed: {e.reason}") from e
    except (OSError, ValueError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead, bad URL
        raise CheckpointError(f"{url}: download failed after {received} bytes: {type(e).__name__}: {e}") from e
    if expected is not None and received != expected:
        raise CheckpointError(f"{url}: download truncated: received {received} of {expected} bytes "
                              f"(connection dropped?); nothing was cached, try again")
    if received == 0:
        raise CheckpointError(f"{url}: download failed: the server sent an empty file")
    return sha.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
