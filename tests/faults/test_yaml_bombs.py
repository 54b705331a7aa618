"""YAML that is small on disk but huge, recursive or too deep once read: refused before it is expanded,
with one error naming the file (and line), within bounded memory and in seconds. Configs (files,
``_base_`` files, ``--opts`` values) give a ConfigError, an export's deploy.yaml through tools/infer.py
one ``error:`` line and exit 2. A ``_base_`` file named many times is read once. (The loader itself:
paddleseg/utils/yaml_io.py.)"""
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from paddleseg.cvlibs import Config, config
from paddleseg.cvlibs.config import _origin_of, load_config, parse_opts
from paddleseg.errors import ConfigError
from paddleseg.utils import yaml_io

from conftest import REPO
from fault_helpers import assert_user_error

# the bombs expand to 9**9 = 387 million values; the first anchor past MAX_NODES is a5 (597,871 nodes)
ANCHORS = ["a0: &a0 [" + ", ".join(["x"] * 9) + "]"] + [
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
BOMB = "its aliases would expand to more than 100000 values"
TOO_DEEP = "nested more than 100 levels deep"
RECURSIVE = "an alias refers to the collection that contains it"


def bomb_under(key: str) -> str:
    """The alias bomb as a mapping under ``key`` (its anchors on lines 2..11, a5 on line 7)."""
    return f"{key}:\n" + "".join(f"  {line}\n" for line in ANCHORS)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def in_seconds(function, *args, **kwargs):
    """``function(*args, **kwargs)``'s exception, asserting it came within a few seconds."""
    start = time.perf_counter()
    with pytest.raises(Exception) as raised:
        function(*args, **kwargs)
    assert time.perf_counter() - start < 5
    return raised.value


def run_capped(cap_bytes: int, *argv, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """A script in a fresh interpreter whose address space is capped (the cap survives train.py's
    restart of itself): a bomb that expanded would end in a MemoryError, not in the expected refusal."""
    return subprocess.run([sys.executable, *map(str, argv)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes)))


# ------------------------------------------------------------------------------------------------
# configs
# ------------------------------------------------------------------------------------------------
def test_alias_bomb_under_an_unknown_key_is_refused_before_expansion(tmp_path):
    path = write(tmp_path / "bomb.yml", bomb_under("lol"))
    assert path.stat().st_size < 1024
    error = in_seconds(Config, path)
    assert isinstance(error, ConfigError)
    assert str(error).startswith(f"{path}:7:7:") and f"refused: {BOMB}" in str(error), str(error)


def test_alias_bomb_inside_a_known_section_is_refused_before_expansion(tmp_path):
    text = "model:\n  type: ESPNetV2\n  num_classes: 19\n" + textwrap.indent(bomb_under("lol"), "  ")
    path = write(tmp_path / "bomb.yml", text)
    error = in_seconds(Config, path)
    assert isinstance(error, ConfigError)
    assert str(error).startswith(f"{path}:10:9:") and f"refused: {BOMB}" in str(error), str(error)


def test_alias_bomb_in_a_base_file_names_that_file(tmp_path):
    base = write(tmp_path / "base.yml", bomb_under("model"))
    error = in_seconds(Config, write(tmp_path / "cfg.yml", "_base_: base.yml\niters: 6\n"))
    assert isinstance(error, ConfigError) and str(error).startswith(f"{base}:7:7:") and BOMB in str(error)


@pytest.mark.slow
def test_train_py_refuses_the_bomb_with_one_error_line_in_bounded_memory(tmp_path):
    """A normal train.py up to a config error needs between 1 and 1.5 GB of address space; the bomb
    reached 6.3 GB before it was refused."""
    config = write(tmp_path / "bomb.yml", bomb_under("lol"))
    done = run_capped(2560 << 20, REPO / "train.py", "--config", config, "--save_dir", tmp_path / "out",
                      cwd=tmp_path)
    error = assert_user_error(done, f"{config}:7:7:", BOMB)
    assert "MemoryError" not in done.stderr, error
    assert not (tmp_path / "out").exists()


def test_a_list_nested_20000_deep_is_refused_without_recursion_error(tmp_path):
    path = write(tmp_path / "deep.yml", "model: " + "[" * 20_000 + "]" * 20_000 + "\n")
    error = in_seconds(Config, path)
    assert isinstance(error, ConfigError) and str(error) == f"{path}:1:107: refused: {TOO_DEEP}"


def test_aliases_nesting_deeper_than_the_bound_are_refused(tmp_path):
    """Each anchor is 3 levels deep, but the chain of aliases nests 3 x 300 levels once expanded."""
    lines = [f"a{i}: &a{i} [[{f'*a{i - 1}' if i else 1}]]" for i in range(300)]
    path = write(tmp_path / "chain.yml", "lol:\n" + "".join(f"  {line}\n" for line in lines))
    error = in_seconds(Config, path)
    assert isinstance(error, ConfigError) and f"refused: with its aliases expanded, {TOO_DEEP}" in str(error)
    assert str(error).startswith(f"{path}:")


def test_a_recursive_alias_is_refused(tmp_path):
    path = write(tmp_path / "loop.yml", "model: &m {type: ESPNetV2, num_classes: 19, me: *m}\n")
    error = in_seconds(Config, path)
    assert isinstance(error, ConfigError) and str(error).startswith(f"{path}:1:8: refused: {RECURSIVE}")


@pytest.mark.parametrize("value, message", [
    ("{" + ", ".join(ANCHORS) + "}", BOMB),
    ("[" * 20_000 + "]" * 20_000, TOO_DEEP),
    ("&l [1, *l]", RECURSIVE),
])
def test_opts_values_with_bombs_are_refused(tmp_path, value, message):
    path = write(tmp_path / "cfg.yml", "iters: 6\n")
    error = in_seconds(Config, path, opts=[f"model.extra={value}"])
    assert isinstance(error, ConfigError)
    assert str(error).startswith("--opts: the value of 'model.extra' is refused: ") and message in str(error)


def test_a_few_aliases_load_exactly_as_plain_yaml(tmp_path):
    """PaddleSeg-style anchors: one transform list and dataset root shared by two sections."""
    text = textwrap.dedent("""
        batch_size: 2
        iters: 10
        train_dataset:
          type: Cityscapes
          dataset_root: &root data/cityscapes
          mode: train
          transforms: &transforms
            - {type: RandomHorizontalFlip}
            - {type: Normalize, mean: &half [0.5, 0.5, 0.5], std: *half}
        val_dataset:
          type: Cityscapes
          dataset_root: *root
          mode: val
          transforms: *transforms
        test_config: {scales: &one [1.0], crop_size: [64, 32]}
        loss: {types: [{type: CrossEntropyLoss}], coef: *one}
    """)
    path = write(tmp_path / "anchors.yml", text)
    expected = yaml.safe_load(text)
    cfg = Config(path, opts=["test_config.stride=[&s 32, *s]"])
    expected["test_config"]["stride"] = [32, 32]
    assert cfg.dic == expected
    assert cfg.dic["val_dataset"]["transforms"] is not cfg.dic["train_dataset"]["transforms"]  # copies
    assert parse_opts(["loss.coef=[&w 0.5, *w]"]) == [(["loss", "coef"], [0.5, 0.5])]


def test_every_shipped_config_loads_as_plain_yaml_reads_it():
    configs = sorted((REPO / "configs").rglob("*.yml")) + sorted((REPO / "tests/data/test_tipc").rglob("*.yml"))
    assert len(configs) >= 4
    for path in configs:
        assert yaml_io.load_file(path) == yaml.safe_load(path.read_text()), path


# ------------------------------------------------------------------------------------------------
# _base_ files: each read once, and only regular files of a config's size
# ------------------------------------------------------------------------------------------------
def test_base_diamond_reads_each_file_once(tmp_path, monkeypatch):
    """level0 names level1 ten times, level1 names level2 ten times, ... : 10**5 loads of level5 before."""
    for level in range(6):
        bases = f"_base_: {[f'level{level + 1}.yml'] * 10}\n" if level < 5 else ""
        write(tmp_path / f"level{level}.yml", f"{bases}model: {{k{level}: {level}, shared: {level}}}\n")
    reads = []
    real_load_file = yaml_io.load_file
    monkeypatch.setattr(yaml_io, "load_file", lambda path, *a, **k: reads.append(Path(path).name) or
                        real_load_file(path, *a, **k))
    origins = {}
    start = time.perf_counter()
    merged = load_config(tmp_path / "level0.yml", origins)
    assert time.perf_counter() - start < 5
    assert sorted(reads) == [f"level{level}.yml" for level in range(6)]
    assert merged == {"model": {**{f"k{level}": level for level in range(6)}, "shared": 0}}
    assert _origin_of(origins, ("model", "k5")).endswith("level5.yml")
    assert _origin_of(origins, ("model", "k3")).endswith("level3.yml")
    assert _origin_of(origins, ("model", "shared")).endswith("level0.yml")


@pytest.mark.slow
def test_a_base_listed_20000_times_is_merged_once(tmp_path, monkeypatch):
    """Merging a base again overrides all its earlier merge set: only its last mention is merged, so a
    long ``_base_`` list cannot multiply the work (20,000 merges of a 10,000-value list before)."""
    write(tmp_path / "big.yml", "test_config: {scales: [" + ", ".join(["1.0"] * 10_000) + "]}\niters: 6\n")
    write(tmp_path / "other.yml", "iters: 7\nbatch_size: 3\n")
    bases = ["big.yml", "./big.yml"] * 10_000 + ["other.yml", "big.yml"]
    merges = []
    real_merge = config._merge
    monkeypatch.setattr(config, "_merge", lambda *a, **k: merges.append(1) or real_merge(*a, **k))
    start = time.perf_counter()
    merged = load_config(write(tmp_path / "cfg.yml", f"_base_: {bases}\n"))
    assert time.perf_counter() - start < 5
    assert merged == {"iters": 6, "batch_size": 3, "test_config": {"scales": [1.0] * 10_000}}
    assert len(merges) == 5  # big.yml's and other.yml's own keys; each of them into cfg.yml; cfg.yml's own


def test_a_shared_base_keeps_its_own_origin_in_errors(tmp_path):
    """common.yml is named by both bases of cfg.yml; an error in it still names it (read once)."""
    write(tmp_path / "common.yml", "model: {type: ESPNetV2, num_classes: 19, scael: 1.0}\n")
    write(tmp_path / "a.yml", "_base_: common.yml\niters: 6\n")
    write(tmp_path / "b.yml", "_base_: common.yml\nbatch_size: 2\n")
    with pytest.raises(ConfigError, match=r"common.yml: model.scael: ESPNetV2 has no argument 'scael'"):
        Config(write(tmp_path / "cfg.yml", "_base_: [a.yml, b.yml]\n"))


def test_a_base_that_is_a_fifo_or_a_device_is_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "fifo.yml")
    for base, kind in (("fifo.yml", "a FIFO (named pipe)"), ("/dev/zero", "a character device")):
        error = in_seconds(Config, write(tmp_path / "cfg.yml", f"_base_: {base}\n"))
        assert isinstance(error, ConfigError) and str(error).startswith(f"{tmp_path / 'cfg.yml'}: _base_: ")
        assert f"is {kind}, not a regular file" in str(error)


def test_a_config_larger_than_the_bound_is_refused_before_it_is_parsed(tmp_path):
    path = write(tmp_path / "big.yml", "iters: 6\n" + "#" * yaml_io.MAX_BYTES + "\n")
    error = in_seconds(Config, path)
    assert isinstance(error, ConfigError)
    assert str(error) == f"config: {path}: is {path.stat().st_size} bytes, more than the {yaml_io.MAX_BYTES} " \
                         f"bytes such a file can hold"


# ------------------------------------------------------------------------------------------------
# an export's deploy.yaml through tools/infer.py
# ------------------------------------------------------------------------------------------------
def deploy_with(folder: Path, anchors: str, *deploy_lines: str) -> Path:
    """An export folder: an ONNX argmax model, and a deploy.yaml of ``anchors`` then ``deploy_lines``
    under ``Deploy:`` (as tests/test_tools_infer.py writes it)."""
    from test_tools_infer import tiny_onnx_export

    tiny_onnx_export(folder)
    deploy = ["model: model.json", "params: model.pdiparams", "onnx: model.onnx", "output_op: argmax",
              "transforms: [{type: Normalize, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}]", *deploy_lines]
    return write(folder / "deploy.yaml", anchors + "Deploy:\n" + "".join(f"  {d}\n" for d in deploy))


def run_infer_capped(tmp_path, folder):
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), np.zeros((20, 30, 3), np.uint8))
    # a normal run of this export needs less than 500 MB of address space
    return run_capped(1 << 30, REPO / "tools" / "infer.py", "--model_dir", folder, "--image_path", tmp_path / "in",
                      "--save_dir", tmp_path / "out", "--backend", "onnxruntime", cwd=tmp_path)


def test_infer_refuses_an_aliased_palette_bomb_with_one_error_line(tmp_path):
    deploy = deploy_with(tmp_path / "export", bomb_under("anchors"), "palette: *a9")
    assert deploy.stat().st_size < 1024
    done = run_infer_capped(tmp_path, deploy.parent)
    error = assert_user_error(done, f"{deploy}:7:7:", f"refused: {BOMB}")
    assert "MemoryError" not in done.stderr, error
    assert not (tmp_path / "out").exists()


def test_infer_runs_an_export_whose_deploy_yaml_has_a_few_aliases(tmp_path):
    deploy = deploy_with(tmp_path / "export", "colours: {road: &road [128, 64, 128], sky: &sky [70, 130, 180]}\n",
                         "palette: [*road, *sky, *road]")
    done = run_infer_capped(tmp_path, deploy.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(tmp_path / "out" / "pseudo_color_prediction" / "a.png") as im:
        colours = np.asarray(im.convert("RGB")).reshape(-1, 3)
    assert {tuple(c) for c in colours} <= {(128, 64, 128), (70, 130, 180)}


@pytest.mark.parametrize("text, message", [
    ("Deploy: {palette: " + "[" * 20_000 + "]" * 20_000 + "}\n", TOO_DEEP),
    ("Deploy: &d {model: model.json, again: *d}\n", RECURSIVE),
])
def test_infer_load_deploy_refuses_deep_and_recursive_deploy_yaml(tmp_path, text, message):
    from paddleseg.deploy.config import load_deploy
    from paddleseg.deploy.errors import DeployError

    path = write(tmp_path / "deploy.yaml", text)
    error = in_seconds(load_deploy, path)
    assert isinstance(error, DeployError) and str(error).startswith(f"{path}:1:") and message in str(error)
