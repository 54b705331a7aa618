"""Released weights by URL or by name: downloaded once, within bounds, into a verified cache.

Every place that takes weights (``--model_path``, ``--finetune_from``, ``model.pretrained``,
``load_entire_model``) goes through :func:`paddleseg.checkpoint.weights.resolve_weights_path`, which
turns an ``http(s)://`` URL or a name of :data:`RELEASED` into a local file with :func:`fetch`; the
file is then read by the safe loader like any other.

The cache is ``$PADDLESEG_HOME/weights`` (default ``~/.cache/paddleseg/weights``, under
``$XDG_CACHE_HOME`` when that is set), one folder per URL holding the file and its SHA-256
(``model.pdparams.sha256``). The file is named after the URL, made safe for any file system: ASCII
letters, digits, ``.``, ``-`` and ``_``, at most :data:`NAME_MAX` characters with the extension kept.

A download is bounded, and enters the cache only as a readable checkpoint:

- Size: a Content-Length over the limit is refused before the body is read, and a body without one is
  cut as soon as it passes the limit: :data:`MAX_BYTES` (2 GiB), or ``$PADDLESEG_DOWNLOAD_MAX_BYTES``.
- Time: each read waits at most ``timeout`` (:data:`TIMEOUT`, 60 s) and the whole download, headers
  included, at most :data:`DEADLINE` (30 min) or ``$PADDLESEG_DOWNLOAD_DEADLINE`` seconds. At the
  deadline a watchdog shuts the connection, so a server that sends a byte now and then cannot hold
  the program however it paces them.
- Content: only the plain file is asked for (``Accept-Encoding: identity``) and any other
  Content-Encoding (a gzip body) is refused; a body shorter than its Content-Length is refused; and
  the complete file is read by :func:`~paddleseg.checkpoint.safe_load.safe_load` before it gets its
  final name, so an HTML login page served with 200, a body cut short by a wrong Content-Length or a
  pickle that runs code never enters the cache.
- Redirects: to http and https only (a redirect to ``file://`` or to another scheme, and a redirect
  loop, are errors).

The body streams to a temporary file in the URL's folder, created with the mode the umask gives any
new file (``0666 & ~umask``, so a shared cache is readable by its group), its SHA-256 is written
beside it, and it is renamed to its final name. On any failure, Ctrl-C included, the temporary file
and every folder this download created are removed: nothing is left in the cache. Two processes
downloading the same URL at once each write their own temporary file and the same bytes land under
the final name.

A later use reads only regular files of bounded size (a cached file or digest record that is a FIFO
or a link to a device is an error, not a hang), hashes the file, compares it with the recorded
digest and reads it with the safe loader; then it is used without touching the network. Any problem
with a cached entry (changed since its download, unreadable, not a checkpoint) is an error naming
the folder to delete to download it again, not a silent re-download, because a changed file in the
cache means something other than this code wrote there.

Only the standard library speaks HTTP (``urllib.request``).
"""
import difflib
import hashlib
import http.client
import math
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Dict, List, Optional, Tuple

from tqdm import tqdm

from paddleseg.checkpoint.safe_load import UnsafeCheckpointError, safe_load
from paddleseg.errors import CheckpointError
from paddleseg.utils.regular_file import open_regular, read_text

HOME_ENV = "PADDLESEG_HOME"
MAX_BYTES_ENV = "PADDLESEG_DOWNLOAD_MAX_BYTES"
DEADLINE_ENV = "PADDLESEG_DOWNLOAD_DEADLINE"
DIGEST_SUFFIX = ".sha256"
TIMEOUT = 60.0  # seconds without data before a download fails
MAX_BYTES = 2 << 30  # the largest download, unless $PADDLESEG_DOWNLOAD_MAX_BYTES says otherwise
DEADLINE = 1800.0  # seconds for a whole download, unless $PADDLESEG_DOWNLOAD_DEADLINE says otherwise
NAME_MAX = 100  # characters of a cached file's name: file systems allow 255 bytes, temporary names add 30
_DIGEST_MAX = 4096  # bytes of a digest record (it holds one line of about 100)
_CHUNK = 1 << 20
_DEFAULT_NAME = "weights.pdparams"


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
    file name inside (:func:`cache_name`)."""
    return cache_root() / hashlib.sha256(url.encode("utf-8")).hexdigest()[:16] / cache_name(url)


def cache_name(url: str) -> str:
    """The last part of ``url``'s path as a file name that any file system takes: characters other than
    ASCII letters, digits, ``.``, ``-`` and ``_`` become ``_``, no leading dot (a hidden file, or ``..``),
    at most :data:`NAME_MAX` characters with the extension kept. The folder is per URL, so shortening
    cannot make two URLs share a file."""
    last = urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", urllib.parse.unquote(last)).lstrip(".")
    if len(name) > NAME_MAX:
        stem, dot, extension = name.rpartition(".")
        keep = dot + extension if stem and len(extension) < 16 else ""
        name = name[: NAME_MAX - len(keep)] + keep
    return name or _DEFAULT_NAME


def digest_path(path: Path) -> Path:
    """The record of ``path``'s SHA-256, beside it."""
    return path.with_name(path.name + DIGEST_SUFFIX)


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


def download_limits() -> Tuple[int, float]:
    """(the largest download in bytes, the seconds a whole download may take): :data:`MAX_BYTES` and
    :data:`DEADLINE` unless ``$PADDLESEG_DOWNLOAD_MAX_BYTES`` / ``$PADDLESEG_DOWNLOAD_DEADLINE`` are set."""
    return _positive_env(MAX_BYTES_ENV, MAX_BYTES, int), _positive_env(DEADLINE_ENV, DEADLINE, float)


def _positive_env(name: str, default, kind: Callable):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not (math.isfinite(value) and value > 0):
        unit = "a whole number of bytes" if kind is int else "a number of seconds"
        raise CheckpointError(f"${name}={text!r}: expected {unit} greater than 0")
    return value


def fetch(url: str, timeout: float = TIMEOUT) -> Path:
    """The cached file of ``url``: verified (:func:`verify_cached`) if cached, else downloaded."""
    path = cached_path(url)
    try:
        cached = path.exists()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot look into the download cache for {url} ({_reason(e)}); "
                              f"set {HOME_ENV} to a writable folder") from e
    if cached:
        verify_cached(path, url)
        return path
    return download(url, path, timeout)


def _clear_hint(path: Path, url: str) -> str:
    return (f"it is the cached download of {url}: delete the folder {path.parent} (it holds only that "
            f"download, {path.name} and {digest_path(path).name}) to download it again")


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def file_digest(path: Path, max_bytes: Optional[int] = None) -> str:
    """The SHA-256 of the regular file ``path`` (at most ``max_bytes``; see :func:`open_regular`)."""
    sha = hashlib.sha256()
    with open_regular(path, max_bytes) as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            sha.update(block)
    return sha.hexdigest()


def verify_cached(path: Path, url: str) -> None:
    """Raise :class:`CheckpointError`, naming the folder to delete, unless ``path`` is a regular file
    with the digest recorded at its download that the safe loader reads."""
    sidecar = digest_path(path)
    clear = _clear_hint(path, url)
    try:
        recorded = read_text(sidecar, _DIGEST_MAX, encoding="ascii").split()[0]
    except (OSError, IndexError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{sidecar}: the digest record of {path} cannot be read "
                              f"({'it is empty' if isinstance(e, IndexError) else _reason(e)}); {clear}") from e
    try:
        actual = file_digest(path, download_limits()[0])
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({_reason(e)}); {clear}") from e
    if actual != recorded:
        raise CheckpointError(f"{path}: changed since it was downloaded (SHA-256 {actual}, recorded "
                              f"{recorded}); {clear}")
    try:
        safe_load(path)
    except CheckpointError as e:
        raise _same_kind(e, f"{e}; {clear}") from e


def download(url: str, path: Path, timeout: float = TIMEOUT) -> Path:
    """Stream ``url`` to ``path`` through a temporary file within :func:`download_limits`, with a
    progress bar on stderr; check it with the safe loader; record its SHA-256 beside it; rename it.
    Any failure is a :class:`CheckpointError` and leaves nothing in the cache (module doc)."""
    max_bytes, seconds = download_limits()
    created = _make_folders(path.parent)
    sidecar = digest_path(path)
    tmp: Optional[Path] = None
    wrote_sidecar = done = False
    try:
        tmp, out = _open_new(path)
        with out:
            digest, content_type = _stream(url, out, timeout, max_bytes, seconds)
            out.flush()
            os.fsync(out.fileno())
        _check_checkpoint(url, tmp, content_type)
        wrote_sidecar = True
        _write_atomic(sidecar, f"{digest}  {path.name}\n")
        os.replace(tmp, path)
        done = True
    except OSError as e:
        raise CheckpointError(f"{url}: cannot store the download in {path.parent} ({_reason(e)}); "
                              f"nothing was cached") from e
    finally:
        if not done:  # failed or interrupted: take back everything this download wrote
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            if wrote_sidecar and not path.exists():  # an existing file is another process's download
                sidecar.unlink(missing_ok=True)
            _remove_empty(created)
    return path


def _make_folders(folder: Path) -> List[Path]:
    """Create ``folder`` and its missing parents; the ones that were missing, deepest first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _remove_empty(missing)
        raise CheckpointError(f"{folder}: cannot create the download cache ({_reason(e)}); "
                              f"set {HOME_ENV} to a writable folder") from e
    return missing


def _remove_empty(folders: List[Path]) -> None:
    """Remove the folders a failed download created, deepest first, while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue  # another process's failed download removed it already
        except OSError:
            return  # not empty: another download of the same URL is using it, and so are its parents


def _open_new(path: Path, attempts: int = 3) -> Tuple[Path, BinaryIO]:
    """A new temporary file beside ``path``. Its mode is what the umask gives any new file
    (``0666 & ~umask``; mkstemp's 0600 would hide a shared cache from its group). A folder that a
    concurrent download of the same URL removed after its failure is created again."""
    for attempt in range(attempts):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        return tmp, os.fdopen(fd, "wb")
    raise AssertionError("unreachable")


def _write_atomic(path: Path, text: str) -> None:
    tmp, out = _open_new(path)
    try:
        with out:
            out.write(text.encode("ascii"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_checkpoint(url: str, tmp: Path, content_type: str) -> None:
    """Raise :class:`CheckpointError` unless the downloaded ``tmp`` is a checkpoint the safe loader reads."""
    try:
        safe_load(tmp)
    except CheckpointError as e:
        reason = str(e).removeprefix(f"{tmp}: ").replace(str(tmp), "the file")
        page = (f" (the server sent {content_type.split(';')[0].strip()}: a login or error page?)"
                if content_type.lower().startswith("text/") else "")
        message = f"{url}: the download is not a usable checkpoint{page}: {reason}; nothing was cached"
        raise _same_kind(e, message) from e


def _same_kind(error: CheckpointError, message: str) -> CheckpointError:
    """``error`` told again with ``message``; an unsafe file stays an :class:`UnsafeCheckpointError`."""
    return (UnsafeCheckpointError if isinstance(error, UnsafeCheckpointError) else CheckpointError)(message)


# --- HTTP within a deadline ----------------------------------------------------------------------


class _Deadline:
    """Shuts every connection of one download when its time is up, so that no read outlives it,
    whether it waits for headers or for the body."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.passed = threading.Event()
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.passed.is_set():
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.passed.set()
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    """End the connection under ``sock``: a read blocked on it returns at once. ``socket.socket``'s own
    method, so that for TLS it shuts the TCP connection without touching the TLS state that the
    reading thread uses."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # closed already: the download has finished with it


class _WatchedConnection:
    """An ``http.client`` connection whose socket the download's :class:`_Deadline` can shut."""

    def __init__(self, *args, deadline: _Deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        super().connect()
        self._deadline.watch(self.sock)


class _WatchedHTTPConnection(_WatchedConnection, http.client.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, http.client.HTTPSConnection):
    pass


class _WatchedHandler(urllib.request.AbstractHTTPHandler):
    """urllib's http and https handlers, opening :class:`_WatchedConnection`\\ s."""

    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline
        self.context = ssl.create_default_context()  # what urlopen uses: certificates and host names checked

    def http_open(self, request):
        return self.do_open(_WatchedHTTPConnection, request, deadline=self.deadline)

    def https_open(self, request):
        return self.do_open(_WatchedHTTPSConnection, request, context=self.context, deadline=self.deadline)

    http_request = urllib.request.AbstractHTTPHandler.do_request_
    https_request = urllib.request.AbstractHTTPHandler.do_request_


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib's redirects without reading the redirect's own body: urllib reads it whole into memory
    before it follows the redirect, and a hostile one is endless."""

    def http_error_302(self, req, fp, code, msg, headers):
        fp.close()  # what it reads afterwards is then empty
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """urllib's default opener without the file, ftp and data handlers (a redirect can lead only to
    http or https), its connections watched by ``deadline``. Proxies from the environment apply."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _WatchedHandler(deadline),
                    urllib.request.HTTPDefaultErrorHandler(), _RedirectHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _stream(url: str, out: BinaryIO, timeout: float, max_bytes: int, seconds: float) -> Tuple[str, str]:
    """Copy the body of ``url`` into ``out`` within the bounds; (the SHA-256 of what was written, the
    server's Content-Type). Network failures are :class:`CheckpointError`\\ s; an error writing ``out``
    is left to the caller."""
    sha = hashlib.sha256()
    received = 0
    with _Deadline(seconds) as deadline:
        def failed(e: BaseException) -> CheckpointError:
            if deadline.passed.is_set():
                return CheckpointError(
                    f"{url}: download took longer than the {seconds:g} s a download may take ({received} bytes "
                    f"received; ${DEADLINE_ENV} sets the limit); nothing was cached")
            if isinstance(e, urllib.error.HTTPError):
                e.close()
                return CheckpointError(f"{url}: download failed: HTTP {e.code} {e.reason}")
            if isinstance(e, urllib.error.URLError):
                return CheckpointError(f"{url}: download failed: {e.reason}")
            return CheckpointError(f"{url}: download failed after {received} bytes: {type(e).__name__}: {e}")

        try:
            request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
            response = _opener(deadline).open(request, timeout=min(timeout, seconds))
        except (OSError, ValueError, http.client.HTTPException) as e:  # refused, timeout, bad URL or redirect
            raise failed(e) from e
        with response:
            expected = _expected_length(url, response.headers, max_bytes)
            with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                      desc=f"downloading {cache_name(url)}", leave=False) as bar:
                while True:
                    try:
                        block = response.read1(_CHUNK)  # what one read gives: a slow server cannot stall the checks
                    except (OSError, http.client.HTTPException) as e:  # reset, timeout, bad chunk
                        raise failed(e) from e
                    if deadline.passed.is_set():
                        raise failed(TimeoutError())
                    if not block:
                        break
                    received += len(block)
                    if received > max_bytes:
                        raise CheckpointError(
                            f"{url}: download is larger than the {max_bytes} bytes a weights file may have "
                            f"(${MAX_BYTES_ENV} sets the limit); nothing was cached")
                    out.write(block)
                    sha.update(block)
                    bar.update(len(block))
            content_type = response.headers.get("Content-Type", "")
    if expected is not None and received != expected:
        raise CheckpointError(f"{url}: download truncated: received {received} of {expected} bytes "
                              f"(connection dropped?); nothing was cached, try again")
    if received == 0:
        raise CheckpointError(f"{url}: download failed: the server sent an empty file")
    return sha.hexdigest(), content_type


def _expected_length(url: str, headers, max_bytes: int) -> Optional[int]:
    """The body's announced length; refuses a compressed body and one announced over ``max_bytes``."""
    encoding = headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise CheckpointError(
            f"{url}: the server sent the file with Content-Encoding: {encoding} although the plain file was "
            f"asked for (Accept-Encoding: identity); nothing was cached. Download it with a tool that decodes "
            f"it and pass the local file")
    length = headers.get("Content-Length", "").strip()
    try:
        expected = int(length) if length.isascii() and length.isdigit() else None
    except ValueError:  # more digits than int() takes: more than any limit, and the streaming cap holds
        expected = None
    if expected is not None and expected > max_bytes:
        raise CheckpointError(f"{url}: the server announces {expected} bytes, more than the {max_bytes} bytes a "
                              f"weights file may have (${MAX_BYTES_ENV} sets the limit); nothing was cached")
    return expected
