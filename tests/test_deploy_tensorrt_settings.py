"""paddleseg.deploy.tensorrt_settings: the range of shapes TensorRT builds for comes from the export when
its input size is fixed, and a given range must fit the export. (The --trt_*_shape arguments
themselves: tests/test_tools_infer.py.)"""
from pathlib import Path

import pytest

from paddleseg.deploy.config import DeployConfig, Normalize, Resize
from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.tensorrt_settings import ShapeRange, check_shape_range, resolve_shape_range


def test_check_shape_range_gives_none_without_flags_and_a_range_with_all_three():
    assert check_shape_range(None, None, None) is None
    shapes = check_shape_range([1, 3, 8, 8], [1, 3, 16, 16], [1, 3, 32, 64])
    assert shapes == ShapeRange((1, 3, 8, 8), (1, 3, 16, 16), (1, 3, 32, 64))
    assert shapes.contains((1, 3, 20, 64)) and not shapes.contains((1, 3, 40, 64)) and not shapes.contains((1, 3))


def deploy_with(input_shape=(-1, 3, -1, -1), resize=None):
    transforms = [Normalize((0.5,) * 3, (0.5,) * 3)]
    if resize:
        transforms.insert(0, Resize(*resize))
    return DeployConfig(Path("deploy.yaml"), Path("."), Path("model.json"), Path("model.pdiparams"),
                        input_shape=tuple(input_shape), transforms=tuple(transforms))


def test_trt_shape_range_comes_from_the_export_when_its_input_size_is_fixed():
    fixed = ShapeRange((1, 3, 64, 128), (1, 3, 64, 128), (1, 3, 64, 128))
    assert resolve_shape_range(deploy_with((1, 3, 64, 128)), None) == fixed
    assert resolve_shape_range(deploy_with(resize=(128, 64)), None) == fixed  # Resize is [width, height]
    given = ShapeRange((1, 3, 32, 32), (1, 3, 64, 128), (1, 3, 128, 256))
    assert resolve_shape_range(deploy_with(), given) is given
    assert resolve_shape_range(deploy_with(resize=(128, 64)), given) is given


@pytest.mark.parametrize("deploy, given, message", [
    (deploy_with(), None, "--use_trt: this export takes any input size (input_shape [-1, 3, -1, -1] in deploy.yaml), "
                          "so TensorRT needs the range of sizes to build for: give --trt_min_shape, --trt_opt_shape, "
                          "--trt_max_shape"),
    (deploy_with((-1, 3, 64, -1)), None, "this export takes any input size"),
    (deploy_with((1, 3, 64, -1)), ((1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 64, 128)),
     "this export's input_shape is [1, 3, 64, -1] (deploy.yaml), so H must be 64 in all three"),
    (deploy_with(resize=(512, 256)), ((1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 128, 128)),
     "deploy.yaml resizes every image to 512x256 (W x H), outside the range"),
])
def test_trt_shape_range_that_does_not_fit_the_export_is_refused(deploy, given, message):
    with pytest.raises(DeployError) as error:
        resolve_shape_range(deploy, given and ShapeRange(*given))
    assert message in str(error.value)
