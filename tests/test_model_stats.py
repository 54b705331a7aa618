import paddle.nn as nn

from paddleseg.models import ESPNetV2
from paddleseg.utils.model_stats import count_macs, count_params


def test_conv_macs_of_known_layers():
    model = nn.Sequential(
        nn.Conv2D(3, 8, 3, stride=2, padding=1),         # out 8x8x8: 512 outputs x 27 MACs
        nn.Conv2D(8, 8, 3, padding=1, groups=8),          # depthwise: 512 x 9
        nn.Conv2D(8, 4, 1, groups=2))                     # grouped 1x1: 256 x 4
    stats = count_macs(model, (1, 3, 16, 16))
    assert stats.conv_macs == 512 * 27 + 512 * 9 + 256 * 4
    assert stats.params == count_params(model) == (8 * 27 + 8) + (8 * 9 + 8) + (4 * 4 + 4)


def test_espnetv2_macs_scale_with_the_input_area():
    model = ESPNetV2(num_classes=19, scale=0.5)
    small = count_macs(model, (1, 3, 64, 128)).conv_macs
    large = count_macs(model, (1, 3, 128, 256)).conv_macs
    # 4x the pixels, 4x the MACs, but for the PSP pyramid's rounding at its 1-2 pixel levels
    assert abs(large / small - 4) < 1e-3
    assert model.training  # counting leaves the mode as it was
