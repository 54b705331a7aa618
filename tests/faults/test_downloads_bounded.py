"""Hostile servers against the weights download: bounded in size and time, nothing bad ever cached.

Every download comes from an ``http.server`` on 127.0.0.1 in a thread whose handlers misbehave on
purpose (an endless body, a drip feed, wrong lengths, an HTML page, a gzip body, redirects that lead
nowhere good); PADDLESEG_HOME points at a temporary folder, and the size limit and the deadline are
lowered through the module constants (in-process) or their environment variables (scripts).
"""
import gzip
import hashlib
import http.server
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Tuple

import paddle
import pytest

from paddleseg.checkpoint import released
from paddleseg.checkpoint.safe_load import UnsafeCheckpointError, safe_load
from paddleseg.errors import CheckpointError

from fault_helpers import assert_user_error, memory_limit, run_with_fault

LONG_NAME = "w" * 291 + ".pdparams"  # 300 characters: more than a file system takes with the temporary suffix
HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>login</form></body></html>\n"
DRIP_BYTES = 10_000  # what a drip feed would take hours to send


class _Hostile(http.server.BaseHTTPRequestHandler):
    """One behaviour per path; ``server.weights`` is a valid checkpoint's bytes."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append((self.path, self.headers.get("Accept-Encoding")))
        route = self.path.strip("/").split("/", 1)[0]
        getattr(self, f"_{route}", self._missing)()

    def _head(self, code=200, **headers):
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), str(value))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _send(self, body: bytes, **headers):
        self._head(Content_Length=len(body), **headers)
        self.wfile.write(body)

    def _good(self):
        self._send(self.server.weights)

    _long = _good

    def _slow(self):  # the whole file in two halves, so that two downloads at once overlap
        body = self.server.weights
        self._head(Content_Length=len(body))
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        time.sleep(0.3)
        self.wfile.write(body[len(body) // 2:])

    def _endless(self):  # no Content-Length: the body ends when the connection does, which is never
        self._head()
        block = b"\0" * (64 << 10)
        while not self.server.stop.is_set():
            self.wfile.write(block)

    def _drip(self):
        self._head(Content_Length=DRIP_BYTES)
        for _ in range(DRIP_BYTES):
            if self.server.stop.is_set():
                return
            self.wfile.write(b"\x80")
            self.wfile.flush()
            time.sleep(0.1)

    def _drip_headers(self):  # the status line, then one header byte at a time, never a blank line
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(DRIP_BYTES):
            if self.server.stop.is_set():
                return
            self.wfile.write(b"a")
            self.wfile.flush()
            time.sleep(0.1)

    def _short_length(self):  # announces half of a valid file: the client stops there, at a "complete" body
        body = self.server.weights
        self._head(Content_Length=len(body) // 2)
        self.wfile.write(body)

    def _long_length(self):  # announces more than it sends, then closes
        body = self.server.weights
        self._head(Content_Length=len(body) + 1000)
        self.wfile.write(body)

    def _html(self):
        self._send(HTML, Content_Type="text/html; charset=utf-8")

    def _gzip(self):
        self._send(gzip.compress(self.server.weights), Content_Encoding="gzip",
                   Content_Type="application/octet-stream")

    def _huge_length(self):
        self._head(Content_Length=10 ** 12)
        self.wfile.write(b"\0" * 1000)

    def _status500(self):
        self.send_error(500, "Internal Server Error")

    def _to_file(self):
        self._head(302, Location="file:///etc/passwd", Content_Length=0)

    def _loop(self):
        self._head(302, Location=self.path, Content_Length=0)

    def _redirect_endless(self):  # a redirect whose own body never ends: the redirect is still followed
        self._head(302, Location="/good/model.pdparams")
        block = b"\0" * (64 << 10)
        while not self.server.stop.is_set():
            self.wfile.write(block)

    def _missing(self):
        self.send_error(404, "Not Found")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("weights") / "model.pdparams"
    paddle.save({"conv.weight": paddle.ones([4, 3, 3, 3]), "conv.bias": paddle.zeros([4])}, str(path))
    data = path.read_bytes()
    assert set(safe_load(path)) == {"conv.weight", "conv.bias"}
    return data


@pytest.fixture
def server(weights):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    httpd.weights, httpd.requests, httpd.stop = weights, [], threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.stop.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """A cache folder that does not exist yet (a failed download must not leave it behind), a 1 MB size
    limit and a 1.5 s deadline."""
    home = tmp_path / "paddleseg_home"
    monkeypatch.setenv(released.HOME_ENV, str(home))
    monkeypatch.delenv(released.MAX_BYTES_ENV, raising=False)
    monkeypatch.delenv(released.DEADLINE_ENV, raising=False)
    monkeypatch.setattr(released, "MAX_BYTES", 1 << 20)
    monkeypatch.setattr(released, "DEADLINE", 1.5)
    return home


def _refused(url: str, *fragments: str, kind=CheckpointError) -> str:
    with pytest.raises(kind) as err:
        released.fetch(url)
    message = str(err.value)
    for fragment in (url, *fragments):
        assert fragment in message, (fragment, message)
    return message


def _assert_nothing_cached(home: Path) -> None:
    left = sorted(str(p.relative_to(home.parent)) for p in home.rglob("*")) if home.exists() else []
    assert not home.exists(), left  # no file, no temporary file, no folder this download created


def test_an_endless_body_is_cut_at_the_size_limit(server, home):
    start = time.monotonic()
    _refused(f"{server.url}/endless/model.pdparams", f"larger than the {1 << 20} bytes", released.MAX_BYTES_ENV)
    assert time.monotonic() - start < 10
    _assert_nothing_cached(home)


def test_a_drip_feed_is_cut_at_the_deadline(server, home):
    start = time.monotonic()
    message = _refused(f"{server.url}/drip/model.pdparams", "longer than the 1.5 s", released.DEADLINE_ENV)
    elapsed = time.monotonic() - start
    assert 1.4 < elapsed < 6, elapsed  # the deadline, not the 60 s per-read timeout, and not the 1000 s drip
    received = int(message.split(" bytes received")[0].rsplit("(", 1)[1])
    assert 5 <= received < 40
    _assert_nothing_cached(home)


def test_headers_sent_one_byte_at_a_time_are_cut_at_the_deadline(server, home):
    start = time.monotonic()
    _refused(f"{server.url}/drip_headers/model.pdparams", "longer than the 1.5 s")
    assert 1.4 < time.monotonic() - start < 6
    _assert_nothing_cached(home)


def test_a_content_length_over_the_limit_is_refused_before_reading(server, home):
    _refused(f"{server.url}/huge_length/model.pdparams", f"announces {10 ** 12} bytes, more than the {1 << 20}")
    _assert_nothing_cached(home)


def test_a_short_content_length_is_refused_by_the_safe_loader(server, home):
    message = _refused(f"{server.url}/short_length/model.pdparams", "not a usable checkpoint", "nothing was cached")
    assert ".part" not in message  # the temporary file is not named: it no longer exists
    _assert_nothing_cached(home)


def test_an_html_page_served_with_200_is_refused_and_named(server, home):
    _refused(f"{server.url}/html/model.pdparams", "not a usable checkpoint",
             "the server sent text/html: a login or error page?")
    _assert_nothing_cached(home)


def test_a_gzip_body_is_refused_and_only_the_plain_file_was_asked_for(server, home):
    _refused(f"{server.url}/gzip/model.pdparams", "Content-Encoding: gzip", "nothing was cached")
    assert server.requests == [("/gzip/model.pdparams", "identity")]
    _assert_nothing_cached(home)


def test_a_pickle_that_runs_code_is_refused_before_the_cache(server, home, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    import pickle

    server.weights = pickle.dumps({"w": Payload()}, protocol=2)
    _refused(f"{server.url}/good/model.pdparams", "system", "nothing was cached", kind=UnsafeCheckpointError)
    assert not marker.exists()
    _assert_nothing_cached(home)


def test_a_300_character_file_name_is_cached_under_a_name_that_fits(server, weights):
    url = f"{server.url}/long/{LONG_NAME}"
    path = released.fetch(url)
    assert len(path.name) == released.NAME_MAX and path.name.endswith(".pdparams")
    assert path.name.startswith("w" * 90) and path.read_bytes() == weights
    assert released.fetch(url) == path  # the cache hit finds it again


@pytest.mark.parametrize("url_name, cached", [
    ("model.pdparams?token=abc#frag", "model.pdparams"),
    ("..", "weights.pdparams"),
    (".hidden.pdparams", "hidden.pdparams"),
    ("a%2Fb%00c d.pdparams", "a_b_c_d.pdparams"),
    ("caf%C3%A9.pdparams", "caf_.pdparams"),
    ("x" * 300, "x" * 100),
    ("y" * 300 + "." + "z" * 20, "y" * 100),  # an "extension" of 20 characters is not kept
])
def test_cache_names_are_safe_and_short(url_name, cached):
    assert released.cache_name(f"http://host/dir/{url_name}") == cached


@pytest.mark.parametrize("route, fragment", [
    ("status500", "HTTP 500"),
    ("to_file", "file:///etc/passwd"),
    ("loop", "infinite loop"),
    ("long_length", "download truncated"),
])
def test_what_held_still_holds_with_nothing_cached(server, home, route, fragment):
    _refused(f"{server.url}/{route}/model.pdparams", fragment)
    _assert_nothing_cached(home)


def test_a_redirect_with_an_endless_body_is_followed_without_reading_it(server, weights):
    start = time.monotonic()
    assert released.fetch(f"{server.url}/redirect_endless/model.pdparams").read_bytes() == weights
    assert time.monotonic() - start < 1.5  # within the deadline: the redirect's body was never read


def test_ctrl_c_during_a_download_leaves_nothing(server, home, monkeypatch):
    monkeypatch.setattr(released, "DEADLINE", 30.0)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            released.fetch(f"{server.url}/drip/model.pdparams")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    _assert_nothing_cached(home)


def test_concurrent_downloads_of_one_url_both_get_the_file(server, weights, home):
    url = f"{server.url}/slow/model.pdparams"
    results, errors = [], []

    def one():
        try:
            results.append(released.fetch(url))
        except CheckpointError as e:  # reported below, with the other thread's result
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert len(server.requests) == 2  # both downloaded: they overlapped
    path = results[0]
    assert path.read_bytes() == weights and sorted(p.name for p in path.parent.iterdir()) == [
        "model.pdparams", "model.pdparams.sha256"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_cached_files_have_the_mode_the_umask_gives(server, umask, mode):
    previous = os.umask(umask)
    try:
        path = released.fetch(f"{server.url}/good/model.pdparams")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert stat.S_IMODE(released.digest_path(path).stat().st_mode) == mode


@pytest.fixture
def cached(server, weights) -> Tuple[Path, str]:
    """A good download in the cache: (its file, its URL)."""
    url = f"{server.url}/good/model.pdparams"
    path = released.fetch(url)
    assert path.read_bytes() == weights
    return path, url


def _assert_clear_hint(message: str, path: Path) -> None:
    assert f"delete the folder {path.parent}" in message and "to download it again" in message, message


@pytest.mark.timeout(30)
@pytest.mark.parametrize("which", ["file", "digest"])
@pytest.mark.parametrize("kind", ["dev_zero", "fifo"])
def test_a_cache_entry_that_is_not_a_regular_file_is_refused_not_read(cached, which, kind):
    cached, url = cached
    target = cached if which == "file" else released.digest_path(cached)
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    with pytest.raises(CheckpointError) as err:
        released.fetch(url)
    message = str(err.value)
    assert ("character device" if kind == "dev_zero" else "FIFO") in message
    _assert_clear_hint(message, cached)


def test_an_oversized_digest_record_is_refused(cached):
    cached, url = cached
    released.digest_path(cached).write_text("0" * 64 + " " * 5000)
    with pytest.raises(CheckpointError, match="more than the 4096 bytes") as err:
        released.fetch(url)
    _assert_clear_hint(str(err.value), cached)


def test_a_bad_file_cached_before_validation_says_how_to_clear_it(cached, server, weights):
    """An HTML page cached by an earlier version, with a digest that matches it."""
    cached, url = cached
    cached.write_bytes(HTML)
    released.digest_path(cached).write_text(f"{hashlib.sha256(HTML).hexdigest()}  {cached.name}\n")
    with pytest.raises(CheckpointError) as err:
        released.fetch(url)
    assert str(cached) in str(err.value)
    _assert_clear_hint(str(err.value), cached)

    for child in cached.parent.iterdir():  # what the message says to do: the next use downloads it again
        child.unlink()
    cached.parent.rmdir()
    assert released.fetch(url).read_bytes() == weights


def test_a_tampered_cache_file_says_how_to_clear_it(cached, server):
    cached, url = cached
    data = cached.read_bytes()
    cached.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(CheckpointError, match="changed since it was downloaded") as err:
        released.fetch(url)
    _assert_clear_hint(str(err.value), cached)
    assert len(server.requests) == 1  # no silent re-download


@pytest.mark.parametrize("variable, value", [
    (released.MAX_BYTES_ENV, "2GB"), (released.MAX_BYTES_ENV, "0"), (released.DEADLINE_ENV, "inf"),
    (released.DEADLINE_ENV, "-1"), (released.DEADLINE_ENV, "nan")])
def test_a_bad_limit_in_the_environment_is_named(server, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(CheckpointError, match=rf"\${variable}='{value}': expected .* greater than 0"):
        released.fetch(f"{server.url}/good/model.pdparams")


def test_the_environment_overrides_the_module_limits(server, monkeypatch, home):
    monkeypatch.setenv(released.MAX_BYTES_ENV, "500")  # the file has 732
    _refused(f"{server.url}/good/model.pdparams", "announces 732 bytes, more than the 500 bytes a weights file")
    monkeypatch.setenv(released.MAX_BYTES_ENV, str(10 ** 15))
    monkeypatch.setenv(released.DEADLINE_ENV, "0.5")
    _refused(f"{server.url}/drip/model.pdparams", "longer than the 0.5 s")
    _assert_nothing_cached(home)


@pytest.mark.slow
@pytest.mark.parametrize("route, fragment", [("endless", "larger than the 2000000 bytes"),
                                             ("drip", "longer than the 3 s")])
def test_val_script_exits_2_in_bounded_time_and_caches_nothing(server, home, tmp_path, tiny_cityscapes,
                                                                monkeypatch, route, fragment):
    from conftest import write_train_config

    config = write_train_config(tmp_path / "c.yml", tiny_cityscapes)
    monkeypatch.setenv(released.MAX_BYTES_ENV, "2000000")
    monkeypatch.setenv(released.DEADLINE_ENV, "3")
    url = f"{server.url}/{route}/model.pdparams"
    start = time.monotonic()
    done = run_with_fault(memory_limit("paddle"), "val.py", "--config", config, "--model_path", url,
                          cwd=tmp_path, timeout=60)
    assert time.monotonic() - start < 60
    assert_user_error(done, url, fragment)
    _assert_nothing_cached(home)


@pytest.fixture
def tls_server(server, tmp_path, monkeypatch):
    """``server`` behind TLS with a self-signed certificate for 127.0.0.1 that ``$SSL_CERT_FILE`` trusts."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.url = server.url.replace("http://", "https://")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return server


def test_https_downloads_and_its_drip_feed_is_cut_at_the_deadline(tls_server, weights, home):
    assert released.fetch(f"{tls_server.url}/good/model.pdparams").read_bytes() == weights
    start = time.monotonic()
    _refused(f"{tls_server.url}/drip_headers/model.pdparams", "longer than the 1.5 s")
    assert 1.4 < time.monotonic() - start < 6


def test_https_with_an_untrusted_certificate_is_refused(tls_server, home, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")
    _refused(f"{tls_server.url}/good/model.pdparams", "CERTIFICATE_VERIFY_FAILED")
    _assert_nothing_cached(home)
