"""Released weights by URL or name: download once into a verified cache, clear errors, safe loading.

Every download comes from a local ``http.server`` on 127.0.0.1 in a thread; PADDLESEG_HOME points
at a temporary folder, so no test touches the network or the user's cache.
"""
import hashlib
import http.server
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import paddle
import pytest

from paddleseg.checkpoint import load_entire_model, released, resolve_weights_path
from paddleseg.checkpoint.safe_load import UnsafeCheckpointError
from paddleseg.errors import CheckpointError
from paddleseg.models import ESPNetV2


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[path]``; ``/short/...`` announces more bytes than it sends, then closes."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path.replace("/short", "", 1))
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        announced = len(body) + 1000 if self.path.startswith("/short") else len(body)
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.path.startswith("/short") else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "paddleseg_home"
    monkeypatch.setenv(released.HOME_ENV, str(home))
    return home


@pytest.fixture(scope="module")
def weights():
    """A small model and its ``paddle.save``d bytes."""
    paddle.seed(5)
    model = ESPNetV2(num_classes=3, scale=0.5)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"released_{os.getpid()}.pdparams"
    paddle.save(model.state_dict(), str(path))
    data = path.read_bytes()
    path.unlink()
    return model, data


def _files_in(folder: Path):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_url_downloads_once_then_loads_from_the_cache_without_the_server(server, weights, cache_home):
    source, data = weights
    server.files["/espnet/model.pdparams"] = data
    url = f"{server.url}/espnet/model.pdparams"
    model = ESPNetV2(num_classes=3, scale=0.5)
    report = load_entire_model(model, url)
    assert report.complete and server.requests == ["/espnet/model.pdparams"]
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), model.state_dict()[key].numpy(), err_msg=key)
    cached = released.cached_path(url)
    assert cached.is_relative_to(cache_home) and cached.read_bytes() == data
    sidecar = cached.with_name(cached.name + ".sha256")
    assert sidecar.read_text().split()[0] == hashlib.sha256(data).hexdigest()
    assert _files_in(cache_home / "weights") == sorted(
        [cached.relative_to(cache_home / "weights").as_posix(), sidecar.relative_to(cache_home / "weights").as_posix()])

    server.shutdown()  # the cache hit must not need the network
    assert resolve_weights_path(url) == cached
    assert load_entire_model(ESPNetV2(num_classes=3, scale=0.5), url).complete
    assert server.requests == ["/espnet/model.pdparams"]


def test_http_404_is_a_checkpoint_error_and_caches_nothing(server, cache_home):
    url = f"{server.url}/missing/model.pdparams"
    with pytest.raises(CheckpointError, match=r"missing/model\.pdparams: download failed: HTTP 404"):
        resolve_weights_path(url)
    assert not released.cached_path(url).exists()
    assert [f for f in _files_in(cache_home / "weights")] == []


def test_truncated_body_is_an_error_and_leaves_no_file_at_the_final_name(server, weights, cache_home):
    _, data = weights
    server.files["/w/model.pdparams"] = data
    url = f"{server.url}/short/w/model.pdparams"
    with pytest.raises(CheckpointError, match=r"download truncated: received \d+ of \d+ bytes") as err:
        load_entire_model(ESPNetV2(num_classes=3, scale=0.5), url)
    assert url in str(err.value)
    assert _files_in(cache_home / "weights") == []  # neither the final name nor a .part file


def test_a_pickle_that_runs_code_served_by_url_is_refused(server, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    server.files["/evil/model.pdparams"] = pickle.dumps({"w": Payload()}, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_entire_model(ESPNetV2(num_classes=3, scale=0.5), f"{server.url}/evil/model.pdparams")
    assert not marker.exists()


def test_a_tampered_cache_file_is_an_error_naming_it_and_how_to_delete_it(server, weights):
    _, data = weights
    server.files["/t/model.pdparams"] = data
    url = f"{server.url}/t/model.pdparams"
    cached = resolve_weights_path(url)
    cached.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(CheckpointError) as err:
        resolve_weights_path(url)
    message = str(err.value)
    assert str(cached) in message and "changed since it was downloaded" in message and "delete" in message
    assert server.requests == ["/t/model.pdparams"]  # no silent re-download

    cached.unlink()  # what the message says to do: the next use downloads it again
    cached.with_name(cached.name + ".sha256").unlink()
    assert resolve_weights_path(url).read_bytes() == data


def test_released_names_resolve_to_their_url(server, weights, monkeypatch):
    _, data = weights
    server.files["/up/model.pdparams"] = data
    entry = released.RELEASED["espnetv2_cityscapes_upstream"]
    assert entry.url == ("https://bj.bcebos.com/paddleseg/dygraph/cityscapes/"
                         "espnet_cityscapes_1024x512_120k/model.pdparams")
    assert entry.config == "configs/espnetv2/espnetv2_cityscapes_1024x512_120k.yml"
    monkeypatch.setitem(released.RELEASED, "espnetv2_cityscapes_upstream",
                        released.ReleasedModel(f"{server.url}/up/model.pdparams", entry.config, entry.miou,
                                               entry.origin))
    assert load_entire_model(ESPNetV2(num_classes=3, scale=0.5), "espnetv2_cityscapes_upstream").complete
    assert ESPNetV2(num_classes=3, scale=0.5, pretrained="espnetv2_cityscapes_upstream") is not None
    assert server.requests == ["/up/model.pdparams"]


def test_unknown_name_lists_the_released_ones():
    with pytest.raises(CheckpointError) as err:
        resolve_weights_path("espnetv2_cityscapes_upstrem")
    message = str(err.value)
    assert "checkpoint file not found" in message and "Did you mean: espnetv2_cityscapes_upstream" in message
    for name in released.RELEASED:
        assert name in message


def test_a_released_model_without_a_known_url_says_where_to_get_it():
    assert released.RELEASED["espnetv2_cityscapes_reproduction"].url is None
    with pytest.raises(CheckpointError, match="without a direct download URL, at https://pan.baidu.com/.*pass the local file"):
        resolve_weights_path("espnetv2_cityscapes_reproduction")


def test_a_local_file_wins_over_a_released_name(tmp_path, weights, monkeypatch):
    _, data = weights
    monkeypatch.chdir(tmp_path)
    Path("espnetv2_cityscapes_upstream").write_bytes(data)
    assert resolve_weights_path("espnetv2_cityscapes_upstream") == Path("espnetv2_cityscapes_upstream")


@pytest.mark.slow
def test_val_script_takes_a_url_and_a_bad_url_exits_2(server, tmp_path, tiny_cityscapes, cache_home):
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "faults"))
    from conftest import write_train_config
    from fault_helpers import assert_user_error, run_script

    config = write_train_config(tmp_path / "c.yml", tiny_cityscapes)
    paddle.seed(1)
    path = tmp_path / "w.pdparams"
    paddle.save(ESPNetV2(num_classes=19, scale=0.5, drop_prob=0.0).state_dict(), str(path))
    server.files["/run/model.pdparams"] = path.read_bytes()
    done = run_script("val.py", "--config", config, "--model_path", f"{server.url}/run/model.pdparams", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mIoU" in done.stdout + done.stderr and server.requests == ["/run/model.pdparams"]
    done = run_script("val.py", "--config", config, "--model_path", f"{server.url}/gone/model.pdparams", cwd=tmp_path)
    assert_user_error(done, f"{server.url}/gone/model.pdparams", "HTTP 404")
