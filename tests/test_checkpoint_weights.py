import numpy as np
import paddle
import pytest

from paddleseg.checkpoint import load_entire_model
from paddleseg.errors import CheckpointError
from paddleseg.models import EESPNetHead, ESPNetV2
from paddleseg.models.backbones import EESPNet

from conftest import fixture_path


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    paddle.seed(3)
    model = ESPNetV2(num_classes=19, scale=0.5)
    path = tmp_path_factory.mktemp("ckpt") / "iter_10" / "model.pdparams"
    path.parent.mkdir()
    paddle.save(model.state_dict(), str(path))
    return model, path


def test_loads_a_file_or_a_checkpoint_folder(small_checkpoint):
    source, path = small_checkpoint
    for target in (path, path.parent):
        model = ESPNetV2(num_classes=19, scale=0.5)
        report = load_entire_model(model, target)
        assert report.complete and len(report.loaded) == len(source.state_dict())
        for k, v in source.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), model.state_dict()[k].numpy(), err_msg=k)


def test_other_scale_fails_strictly_naming_shapes(small_checkpoint):
    _, path = small_checkpoint
    with pytest.raises(CheckpointError) as err:
        load_entire_model(ESPNetV2(num_classes=19, scale=1.0), path)
    message = str(err.value)
    assert str(path) in message and "shape mismatch" in message
    assert "backbone.level2.eesp.group_conv_in._conv.weight" in message


def test_other_class_count_strict_fails_and_non_strict_loads_the_rest(small_checkpoint):
    source, path = small_checkpoint
    model = ESPNetV2(num_classes=7, scale=0.5)
    with pytest.raises(CheckpointError, match=r"project_l2._conv.weight file \[19, 51, 1, 1\] vs model \[7, 39, 1, 1\]"):
        load_entire_model(model, path)
    report = load_entire_model(model, path, strict=False)
    skipped = {k for k, _, _ in report.mismatched}
    assert skipped == {k for k, v in model.state_dict().items() if tuple(v.shape) != tuple(source.state_dict()[k].shape)}
    assert "project_l1.1.weight" in skipped and "backbone.level1._conv.weight" in report.loaded
    np.testing.assert_array_equal(model.backbone.level1._conv.weight.numpy(),
                                  source.backbone.level1._conv.weight.numpy())


def test_the_other_released_format_is_named_in_the_error():
    weights = fixture_path("espnetv2", "paddleseg_scale2", "model.pdparams")
    with pytest.raises(CheckpointError, match=r"format of upstream PaddleSeg \(model type ESPNetV2\)"):
        load_entire_model(EESPNetHead(EESPNet(scale=2.0), num_classes=19), weights)


def test_missing_truncated_and_foreign_files_are_clear_errors(tmp_path, small_checkpoint):
    _, path = small_checkpoint
    model = ESPNetV2(num_classes=19, scale=0.5)
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_entire_model(model, tmp_path / "nope.pdparams")
    truncated = tmp_path / "truncated.pdparams"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated.pdparams: cannot be read as a Paddle checkpoint"):
        load_entire_model(model, truncated)
    foreign = tmp_path / "foreign.pdparams"
    foreign.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="foreign.pdparams"):
        load_entire_model(model, foreign)
