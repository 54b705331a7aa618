"""paddleseg.deploy.tensorrt_cache: a converted TensorRT program is made once per key, kept with a
manifest of digests, and made again when an entry is incomplete, damaged or moved; concurrent runs
convert once; files this code did not write are never deleted."""
import json

import pytest

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.tensorrt_cache import cached_trt_program


class FakeConversion:
    """Stands in for paddle.tensorrt.convert: writes what it writes (the program names its engine
    file by absolute path) and counts the calls; ``fail_after_json`` raises part-way."""

    def __init__(self, fail_after_json=None):
        self.calls = 0
        self.fail_after_json = fail_after_json

    def __call__(self, prefix):
        self.calls += 1
        engine = prefix / "engine_1_1.trt"
        prefix.with_suffix(".json").write_text(json.dumps({"engine_serialized_data": str(engine)}))
        if self.fail_after_json:
            raise self.fail_after_json
        prefix.with_suffix(".pdiparams").write_bytes(b"params")
        prefix.mkdir()
        engine.write_bytes(b"engine")


KEY = {"backend": "paddle", "precision": "fp16", "model": "digest", "shapes": [[1, 3, 8, 8]] * 3}


def test_trt_cache_converts_once_and_reuses_the_result(tmp_path):
    convert = FakeConversion()
    prefix = cached_trt_program(tmp_path / "cache", KEY, convert)
    assert cached_trt_program(tmp_path / "cache", KEY, convert) == prefix and convert.calls == 1
    entry = prefix.parent
    assert entry.parent == tmp_path / "cache" and entry.name.startswith("paddle-fp16-")
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["entry"] == str(entry) and manifest["key"] == KEY
    assert sorted(manifest["files"]) == ["model.json", "model.pdiparams", "model/engine_1_1.trt"]
    assert [p.name for p in entry.iterdir() if p.name.startswith(".")] == []  # no temporary manifest left
    other = cached_trt_program(tmp_path / "cache", {**KEY, "shapes": [[1, 3, 8, 16]] * 3}, convert)
    assert other.parent != entry and convert.calls == 2  # another shape range is another entry


def test_interrupted_trt_conversion_leaves_nothing_and_is_done_again(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        cached_trt_program(tmp_path / "cache", KEY, FakeConversion(fail_after_json=KeyboardInterrupt()))
    assert list((tmp_path / "cache").iterdir()) == []
    convert = FakeConversion()
    prefix = cached_trt_program(tmp_path / "cache", KEY, convert)
    assert convert.calls == 1 and (prefix.parent / "manifest.json").is_file()


@pytest.mark.parametrize("damage, reason", [
    (lambda entry: (entry / "manifest.json").unlink(), "is incomplete (an earlier conversion was interrupted)"),
    (lambda entry: (entry / "model" / "engine_1_1.trt").write_bytes(b"truncat"),
     "is damaged (model/engine_1_1.trt changed since it was written)"),
    (lambda entry: (entry / "model.pdiparams").unlink(), "is missing model.pdiparams"),
    (lambda entry: (entry / "manifest.json").write_text("{"), "is unreadable"),
    (lambda entry: [(entry / "manifest.json").unlink(), (entry / "model.pdiparams.info").write_bytes(b"")],
     "is incomplete"),  # model.* is paddle.tensorrt's to write: not a foreign file
])
def test_unusable_trt_cache_entry_is_converted_again(tmp_path, caplog, damage, reason):
    """A run killed mid-conversion (no manifest) or a changed file: the entry is deleted and rebuilt."""
    convert = FakeConversion()
    entry = cached_trt_program(tmp_path / "cache", KEY, convert).parent
    damage(entry)
    with caplog.at_level("WARNING", logger="paddleseg.deploy.tensorrt_cache"):
        assert cached_trt_program(tmp_path / "cache", KEY, convert).parent == entry
    assert convert.calls == 2 and f"{entry} {reason}" in caplog.text and "converting again" in caplog.text
    assert (entry / "model" / "engine_1_1.trt").read_bytes() == b"engine"


def test_moved_trt_cache_is_converted_again(tmp_path, caplog):
    """The converted program names its engine files by absolute path: a moved cache cannot be used."""
    convert = FakeConversion()
    cached_trt_program(tmp_path / "cache", KEY, convert)
    (tmp_path / "cache").rename(tmp_path / "moved")
    with caplog.at_level("WARNING", logger="paddleseg.deploy.tensorrt_cache"):
        prefix = cached_trt_program(tmp_path / "moved", KEY, convert)
    assert convert.calls == 2 and "is moved (built in " in caplog.text
    engine = json.loads(prefix.with_suffix(".json").read_text())["engine_serialized_data"]
    assert engine.startswith(str(tmp_path / "moved"))


def test_trt_cache_entry_with_foreign_files_is_left_alone(tmp_path):
    entry = cached_trt_program(tmp_path / "cache", KEY, FakeConversion()).parent
    (entry / "manifest.json").unlink()
    (entry / "notes.txt").write_text("mine")
    with pytest.raises(DeployError, match=r"holds files tools/infer.py does not write \(notes.txt\)"):
        cached_trt_program(tmp_path / "cache", KEY, FakeConversion())
    assert (entry / "notes.txt").read_text() == "mine" and (entry / "model.json").is_file()


def test_trt_cache_dir_that_is_a_file_is_a_user_error(tmp_path):
    (tmp_path / "cache").write_text("mine")
    with pytest.raises(DeployError, match="--trt_cache_dir .*cache: cannot create it"):
        cached_trt_program(tmp_path / "cache", KEY, FakeConversion())
    assert (tmp_path / "cache").read_text() == "mine"


def test_concurrent_runs_convert_once(tmp_path):
    """A second run waits for the lock while the first converts, then uses its result."""
    import threading

    started, release = threading.Event(), threading.Event()
    convert = FakeConversion()

    def slow(prefix):
        started.set()
        assert release.wait(30)
        convert(prefix)

    results = []
    first = threading.Thread(target=lambda: results.append(cached_trt_program(tmp_path / "cache", KEY, slow)))
    second = threading.Thread(target=lambda: results.append(cached_trt_program(tmp_path / "cache", KEY, convert)))
    first.start()
    assert started.wait(30)
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting for the lock, not converting alongside
    release.set()
    first.join(30)
    second.join(30)
    assert len(results) == 2 and results[0] == results[1] and convert.calls == 1
