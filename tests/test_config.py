import re
import textwrap
from pathlib import Path

import pytest

import paddleseg  # noqa: F401  (registers components)
from paddleseg.cvlibs import Config
from paddleseg.cvlibs.config import load_config, parse_opts
from paddleseg.errors import ConfigError

from conftest import REPO

MODEL = {"type": "ESPNetV2", "scale": 0.5, "num_classes": 19, "drop_prob": 0.0}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def tree(tmp_path):
    """base.yml ← configs/mid.yml ← configs/sub/top.yml, with relative _base_ paths."""
    write(tmp_path / "base.yml", """
        batch_size: 2
        iters: 100
        model: {type: ESPNetV2, scale: 0.5, num_classes: 19, drop_prob: 0.1}
        optimizer: {type: SGD, momentum: 0.9, weight_decay: 0.0001}
        lr_scheduler: {type: PolynomialDecay, learning_rate: 0.01}
        loss: {types: [{type: CrossEntropyLoss}], coef: [1, 0.4]}
    """)
    write(tmp_path / "configs" / "mid.yml", """
        _base_: ../base.yml
        iters: 200
        model: {scale: 1.0}
    """)
    return write(tmp_path / "configs" / "sub" / "top.yml", """
        _base_: ../mid.yml
        batch_size: 4
        loss: {coef: [1]}
    """)


def test_base_inheritance_is_recursive_merges_dicts_and_replaces_lists(tree):
    cfg = Config(tree)
    assert cfg.batch_size == 4 and cfg.iters == 200
    assert cfg.dic["model"] == {"type": "ESPNetV2", "scale": 1.0, "num_classes": 19, "drop_prob": 0.1}
    assert cfg.dic["loss"]["coef"] == [1]  # list replaced, not merged
    assert cfg.dic["loss"]["types"] == [{"type": "CrossEntropyLoss"}]


def test_inherited_false_replaces_the_base_mapping(tree):
    write(tree, """
        _base_: ../mid.yml
        optimizer: {_inherited_: False, type: Adam, weight_decay: 0.0002}
    """)
    assert Config(tree).dic["optimizer"] == {"type": "Adam", "weight_decay": 0.0002}


def test_merging_a_key_the_new_type_lacks_is_caught(tree):
    # without _inherited_: False, SGD's momentum survives and Adam has no such argument
    write(tree, """
        _base_: ../mid.yml
        optimizer: {type: Adam}
    """)
    with pytest.raises(ConfigError, match=r"base.yml: optimizer.momentum: Adam has no argument 'momentum'"):
        Config(tree)


def test_opts_override_with_yaml_values_and_list_indices(tree):
    cfg = Config(tree, opts=["model.scale=2.0", "loss.coef=[1, 0.4]", "loss.types.0.ignore_index=254",
                             "batch_size=8"])
    assert cfg.dic["model"]["scale"] == 2.0 and cfg.batch_size == 8
    assert cfg.dic["loss"]["coef"] == [1, 0.4]
    assert cfg.dic["loss"]["types"][0]["ignore_index"] == 254


def test_command_line_shortcuts_override_the_file(tree):
    cfg = Config(tree, learning_rate=0.5, batch_size=3, iters=7)
    assert (cfg.dic["lr_scheduler"]["learning_rate"], cfg.batch_size, cfg.iters) == (0.5, 3, 7)


def test_reading_the_config_never_changes_it(tree):
    cfg = Config(tree)
    before = repr(cfg)
    model = cfg.model
    assert cfg.model is model  # built once, cached
    assert repr(cfg) == before


@pytest.mark.parametrize("opts, pattern", [
    (["modle.scale=1.0"], r"top.yml: modle: unknown top-level key. Did you mean: model\?"),
    (["model.type=ESPNetv2"], r"--opts: model.type: unknown model type 'ESPNetv2'. Did you mean: ESPNetV2"),
    (["model.scal=1.0"], r"--opts: model.scal: ESPNetV2 has no argument 'scal'. Did you mean: scale\?"),
    (["model.scale=big"], r"model.scale: ESPNetV2.scale expects float, got 'big'"),
    (["batch_size=0"], r"batch_size: must be a positive integer, got 0"),
    (["loss.types=[{type: CrossEntropyLos}]"], r"loss.types\[0\].type: unknown loss type 'CrossEntropyLos'"),
    (["loss.types=[{type: CrossEntropyLoss}, {type: CrossEntropyLoss}]", "loss.coef=[1, 2, 3]"],
     r"loss.coef: must be a list with one coefficient per entry"),
    (["test_config.is_slid=true"], r"test_config.is_slid: unknown key. Did you mean: is_slide\?"),
    (["model.backbone.scale=1.0"], r"ESPNetV2 has no argument 'backbone'"),
    (["test_config.scales=[0.75, 40.0]"], r"--opts: test_config.scales: must be a scale or a non-empty list of "
                                         r"scales, each from 1/64 to 16, got \[0.75, 40.0\]"),
    (["test_config.scales=.nan"], r"test_config.scales: must be a scale"),
    (["test_config.scales=[]"], r"test_config.scales: must be a scale"),
    (["test_config.scales=[true]"], r"test_config.scales: must be a scale"),
    (["test_config.crop_size=[512, 0]"], r"test_config.crop_size: test_config.crop_size must be \[width, height\]"),
    (["test_config.stride=[70000, 70000]"], r"test_config.stride: test_config.stride must be \[width, height\]"),
    (["test_config.is_slide=yes please"], r"test_config.is_slide: must be true or false, got 'yes please'"),
])
def test_config_errors_name_the_file_the_key_and_the_closest_names(tree, opts, pattern):
    with pytest.raises(ConfigError, match=pattern):
        Config(tree, opts=opts)


def test_an_error_in_a_base_file_names_that_file(tree):
    text = (tree.parents[2] / "base.yml").read_text().replace("drop_prob: 0.1", "drop_prb: 0.1")
    (tree.parents[2] / "base.yml").write_text(text)
    with pytest.raises(ConfigError, match=r"base.yml: model.drop_prb: ESPNetV2 has no argument 'drop_prb'"):
        Config(tree)


def test_missing_required_argument_is_named(tmp_path):
    path = write(tmp_path / "c.yml", """
        model: {type: EESPNetHead, num_classes: 19}
    """)
    with pytest.raises(ConfigError, match=r"c.yml: model: EESPNetHead is missing required argument\(s\): backbone"):
        Config(path)


def test_nested_component_errors_carry_the_full_key_path(tmp_path):
    path = write(tmp_path / "c.yml", """
        model: {type: EESPNetHead, num_classes: 19, backbone: {type: EESPNet, scael: 2.0}}
    """)
    with pytest.raises(ConfigError, match=r"c.yml: model.backbone.scael: EESPNet has no argument 'scael'. "
                                          r"Did you mean: scale"):
        Config(path)


def test_missing_base_file_names_the_including_file(tmp_path):
    path = write(tmp_path / "c.yml", "_base_: nowhere.yml\n")
    with pytest.raises(ConfigError, match=r"c.yml: _base_: file not found: .*nowhere.yml"):
        Config(path)


def test_base_cycle_is_reported_with_the_chain(tmp_path):
    write(tmp_path / "a.yml", "_base_: b.yml\n")
    write(tmp_path / "b.yml", "_base_: a.yml\n")
    with pytest.raises(ConfigError, match=r"_base_ cycle: .*a.yml -> .*b.yml -> .*a.yml"):
        load_config(tmp_path / "a.yml")


def test_invalid_yaml_and_non_mapping_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config(write(tmp_path / "bad.yml", "model: [unclosed\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        Config(write(tmp_path / "list.yml", "- 1\n- 2\n"))


def test_malformed_opts_are_rejected():
    with pytest.raises(ConfigError, match="not of the form key.sub=value"):
        parse_opts(["batch_size"])
    assert parse_opts(["a.b=[1, 2]", "c=x"]) == [(["a", "b"], [1, 2]), (["c"], "x")]


@pytest.mark.parametrize("name, model_type", [
    ("configs/espnet_cityscapes_1024_512_120k_x2.yml", "EESPNetHead"),
    ("configs/espnetv2/espnetv2_cityscapes_1024x512_120k.yml", "ESPNetV2"),
])
def test_both_reference_configs_load_unchanged(name, model_type):
    cfg = Config(REPO / name, opts=["model.drop_prob=0.0"])
    assert cfg.dic["model"]["type"] == model_type
    assert cfg.iters == 120000 and cfg.batch_size == 8
    assert cfg.dic["lr_scheduler"] == {"type": "PolynomialDecay", "learning_rate": 0.001, "end_lr": 0.0, "power": 0.9}
    assert cfg.dic["optimizer"]["weight_decay"] == 0.0002
    weights = cfg.dic["loss"]["types"][0]["weight"]
    assert len(weights) == 19 and weights[0] == pytest.approx(2.79834108)
    assert type(cfg.model).__name__ == model_type
    assert len(cfg.loss["types"]) == 2  # one weighted CE for each of the two outputs


def test_paddleseg_style_properties_build_each_section_once(tmp_path, tiny_cityscapes):
    import paddle

    from conftest import write_train_config

    cfg = Config(write_train_config(tmp_path / "cfg.yml", tiny_cityscapes))
    assert cfg.train_dataset is cfg.train_dataset and len(cfg.train_dataset) == 8
    assert cfg.val_dataset.mode == "val" and len(cfg.val_dataset) == 4
    assert cfg.lr_scheduler is cfg.lr_scheduler and cfg.lr_scheduler() == pytest.approx(0.005)
    optimizer = cfg.optimizer
    assert isinstance(optimizer, paddle.optimizer.Adam) and optimizer is cfg.optimizer
    assert optimizer._parameter_list[0] is cfg.model.parameters()[0]  # the model's own parameters
    assert optimizer._learning_rate is cfg.lr_scheduler


# ------------------------------------------------------------------------------------------------
# What a component's constructor rejects: a ConfigError naming the file that set the key and its path
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opts, pattern", [
    (["lr_scheduler.power=-2"], r"^--opts: lr_scheduler.power: PolynomialDecay.power must be a number > 0, got -2$"),
    (["optimizer.weight_decay=-1"], r"^--opts: optimizer.weight_decay: SGD.weight_decay must be a number >= 0"),
    (["loss.types=[{type: OhemCrossEntropyLoss, thresh: 1.5}]"],
     r"^--opts: loss.types\[0\].thresh: OhemCrossEntropyLoss.thresh must be a number >= 0 and <= 1, got 1.5$"),
])
def test_a_bad_argument_value_is_caught_when_the_config_is_loaded(tree, opts, pattern):
    with pytest.raises(ConfigError, match=pattern):
        Config(tree, opts=opts)


def test_a_bad_value_in_a_base_file_names_that_file(tree):
    text = (tree.parents[2] / "base.yml").read_text().replace("learning_rate: 0.01", "learning_rate: -0.01")
    (tree.parents[2] / "base.yml").write_text(text)
    with pytest.raises(ConfigError, match=r"base.yml: lr_scheduler.learning_rate: PolynomialDecay.learning_rate "
                                          r"must be a number > 0, got -0.01$"):
        Config(tree)


def test_command_line_shortcuts_are_named_as_the_flag(tree):
    with pytest.raises(ConfigError, match=r"^--learning_rate: lr_scheduler.learning_rate: PolynomialDecay"):
        Config(tree, learning_rate=-0.01)
    with pytest.raises(ConfigError, match=r"^--iters: iters: must be a positive integer, got 0$"):
        Config(tree, iters=0)


def test_bad_transform_arguments_are_caught_when_the_config_is_loaded(tmp_path, tiny_cityscapes):
    from conftest import write_train_config

    path = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    with pytest.raises(ConfigError, match=r"^--opts: train_dataset.transforms\[0\].crop_size: RandomPaddingCrop."
                                          r"crop_size must be \[width, height\] with two integers from 1 to 65535, "
                                          r"got \[0, 0\]$"):
        Config(path, opts=["train_dataset.transforms.0.crop_size=[0, 0]"])
    val = {"type": "Cityscapes", "dataset_root": str(tiny_cityscapes), "mode": "val",
           "transforms": [{"type": "Normalize", "std": [0, 1, 1]}]}
    path = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, val_dataset=val)
    with pytest.raises(ConfigError, match=r"cfg.yml: val_dataset.transforms\[0\].std: Normalize.std\[0\] must be a "
                                          r"number > 0, got 0.0$"):
        Config(path)


def test_a_schedule_without_iters_is_not_built_at_validation(tmp_path):
    path = write(tmp_path / "c.yml", """
        model: {type: ESPNetV2, scale: 0.5, num_classes: 19}
        lr_scheduler: {type: PolynomialDecay, learning_rate: 0.01}
    """)
    assert Config(path).dic["lr_scheduler"]["learning_rate"] == 0.01  # val.py configs may have no iters


class _Asserts:
    def __init__(self, power: float = 1.0):
        if power <= 0:  # as Paddle's schedulers assert (written out: pytest rewrites asserts in tests)
            raise AssertionError(f"power should be greater than 0.0, but received power: {power}")


class _Types:
    def __init__(self, size: int = 1):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")


@pytest.mark.parametrize("component, arguments, pattern", [
    (_Asserts, {"power": -2}, r"^c.yml: thing.power: _Asserts: power should be greater than 0.0, but received "
                              r"power: -2$"),
    (_Types, {"size": "x"}, r"^c.yml: thing: _Types: unsupported operand type\(s\) for \+: 'int' and 'str'$"),
])
def test_the_builder_turns_what_a_constructor_raises_into_a_config_error(component, arguments, pattern):
    """Paddle's own classes assert or raise TypeError about their arguments: a config error too. The
    key path is the argument's when the message names exactly one of the given arguments."""
    from paddleseg.cvlibs import builder
    from paddleseg.cvlibs.manager import Registry

    registry = Registry("thing")
    registry.add_component(component)
    with pytest.raises(ConfigError, match=pattern) as raised:
        builder.build_component({"type": component.__name__, **arguments}, registry, "thing",
                                lambda path: f"c.yml: {path}")
    assert isinstance(raised.value.__cause__, (AssertionError, TypeError))  # --debug shows the original


def test_a_yaml_syntax_error_is_one_line_with_the_position(tmp_path):
    with pytest.raises(ConfigError) as raised:
        Config(write(tmp_path / "bad.yml", "model:\n  type: ESPNetV2\n   scale: 1\n"))
    message = str(raised.value)
    assert "\n" not in message
    assert re.search(r"bad.yml:3:\d+: not valid YAML: ", message), message


def test_good_test_configs_pass(tree):
    cfg = Config(tree, opts=["test_config.scales=[0.5, 1.0, 1.75]", "test_config.aug_eval=true",
                             "test_config.is_slide=true", "test_config.crop_size=[256, 128]", "test_config.stride=[128, 64]"])
    assert cfg.test_config["scales"] == [0.5, 1.0, 1.75]
    assert Config(tree, opts=["test_config.scales=0.75"]).test_config["scales"] == 0.75  # one number, as upstream
