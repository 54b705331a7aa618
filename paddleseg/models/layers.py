"""Small building blocks shared by the backbone and the head.

State-dict names are a checkpoint contract: ``_conv``, ``_batch_norm`` and ``_prelu.act_func`` are
the names upstream PaddleSeg's released ESPNetV2 checkpoint uses, so the attributes keep them.
"""
from typing import List, Sequence, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

Padding = Union[int, Sequence[int]]


def conv_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> Padding:
    """Static padding that keeps ``ceil(size / stride)`` outputs for any input size.

    Stride 1: the symmetric ``dilation * (k - 1) / 2``. Stride 2: one pixel less before and one more
    after, which samples exactly the pixels of Paddle's ``padding='same'`` on even sizes (what the
    released checkpoints were trained with) and still yields ``ceil(size / 2)`` on odd sizes, so the
    image shortcut, the average pool and the convolution branch of a down-sampler always agree.
    Unlike ``'same'`` it is a fixed number, which exporters and ONNX converters accept for dilated
    depthwise convolutions.
    """
    half = dilation * (kernel_size - 1) // 2
    if stride == 1:
        return half
    if stride != 2:
        raise ValueError(f"conv_padding supports stride 1 or 2, got {stride}")
    return [half - 1, half + 1, half - 1, half + 1]


def resize(x: paddle.Tensor, like: paddle.Tensor) -> paddle.Tensor:
    """Bilinear (align_corners=True) resize of ``x`` to the spatial size of ``like``.

    Sizes come from the tensors, so any input size works (the references upsample by a fixed factor
    and break on sizes that are not multiples of 32).
    """
    return F.interpolate(x, size=paddle.shape(like)[2:], mode="bilinear", align_corners=True)


class Activation(nn.Layer):
    """A named activation slot; holds its layer as ``act_func`` (checkpoint contract)."""

    def __init__(self, act: str = "prelu"):
        super().__init__()
        if act == "prelu":
            self.act_func = nn.PReLU()
        elif act == "relu":
            self.act_func = nn.ReLU()
        else:
            raise ValueError(f"unsupported activation '{act}' (prelu, relu)")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.act_func(x)


class ConvBN(nn.Layer):
    """Conv2D → BatchNorm. ``bias`` adds a conv bias (the reference reproduction has some)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False):
        super().__init__()
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                               padding=conv_padding(kernel_size, stride), groups=groups,
                               bias_attr=None if bias else False)
        self._batch_norm = nn.BatchNorm2D(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._batch_norm(self._conv(x))


class ConvBNAct(ConvBN):
    """Conv2D → BatchNorm → activation (``prelu`` or ``relu``), the activation as ``_prelu``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False, act: str = "prelu"):
        super().__init__(in_channels, out_channels, kernel_size, stride, groups, bias)
        self._prelu = Activation(act)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._prelu(self._batch_norm(self._conv(x)))


class BNPReLU(nn.Layer):
    """BatchNorm → PReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self._batch_norm = nn.BatchNorm2D(channels)
        self._prelu = Activation("prelu")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._prelu(self._batch_norm(x))


def concat(tensors: List[paddle.Tensor]) -> paddle.Tensor:
    return paddle.concat(tensors, axis=1)
