"""Small building blocks shared by the backbone and the head.

State-dict names are a checkpoint contract: ``_conv``, ``_batch_norm`` and ``_prelu.act_func`` are
the names upstream PaddleSeg's released ESPNetV2 checkpoint uses, so the attributes keep them.
"""
import functools
from typing import List, Sequence, Union

import numpy as np
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

    Two formulations of the same function, equal to float rounding (tests/test_resize.py): eager
    execution calls ``F.interpolate`` (one fast kernel); a traced graph (``paddle.jit.to_static``,
    export) gets :func:`_resize_by_gather`, because Paddle Inference 3.3's oneDNN path cannot run the
    exported ``bilinear_interp`` op at all ("ConvertPirAttribute2RuntimeAttribute not support
    pir::ArrayAttribute<pir::DoubleAttribute>"). The choice is made once, while tracing, on a Python
    bool: no shape-dependent control flow enters the graph.
    """
    if paddle.in_dynamic_mode():
        return F.interpolate(x, size=paddle.shape(like)[2:], mode="bilinear", align_corners=True)
    return _resize_by_gather(x, like)


def upsample_by_matmul(x: paddle.Tensor, like: paddle.Tensor) -> paddle.Tensor:
    """:func:`resize` as two matrix products, ``A_h @ (x @ A_w^T)`` with the dense (out, in)
    interpolation matrices of each axis; equal to ``F.interpolate`` to float rounding
    (tests/test_resize.py).

    For training's large upsamplings (the auxiliary class map, 8x): the backward is then two GEMMs,
    where the gradient kernel of bilinear_interp on CPU costs ~0.45 s for a 2x19x512x1024 output
    whatever the input size (64x128 -> 512x1024, forward + backward: 0.22 s here, 0.54 s with
    F.interpolate). Each output pixel costs ``in_h + in_w`` multiply-adds, so it does not pay for
    small factors (2x: 1.0 s vs 0.54 s). Traced graphs get :func:`resize`.
    """
    if not paddle.in_dynamic_mode():
        return resize(x, like)
    (in_h, in_w), (out_h, out_w) = x.shape[2:], like.shape[2:]
    rows = paddle.to_tensor(_interpolation_matrix(in_h, out_h), dtype=x.dtype)
    columns = paddle.to_tensor(_interpolation_matrix(in_w, out_w).T, dtype=x.dtype)
    return paddle.matmul(rows, paddle.matmul(x, columns))


@functools.lru_cache(maxsize=16)
def _interpolation_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) float32 matrix of align_corners=True linear interpolation along one axis; the
    source positions are computed in float32 as Paddle's kernel does (:func:`_linear_taps`)."""
    ratio = np.float32(in_size - 1) / np.float32(max(out_size - 1, 1))
    src = np.arange(out_size, dtype=np.float32) * ratio
    lower = np.floor(src).astype(np.int64)
    weight = src - lower.astype(np.float32)
    upper = np.minimum(lower + 1, in_size - 1)
    matrix = np.zeros((out_size, in_size), np.float32)
    np.add.at(matrix, (np.arange(out_size), lower), 1 - weight)
    np.add.at(matrix, (np.arange(out_size), upper), weight)
    matrix.flags.writeable = False
    return matrix


def _linear_taps(in_size: paddle.Tensor, out_size: paddle.Tensor):
    """For align_corners=True along one axis: the lower and upper source index of every output
    position and the weight of the upper one. Output ``i`` samples ``i * (in - 1) / (out - 1)``
    (0 when ``out == 1``), the convention of Paddle's bilinear_interp kernel."""
    in_f = in_size.astype("float32")
    out_f = out_size.astype("float32")
    ratio = (in_f - 1.0) / paddle.maximum(out_f - 1.0, paddle.ones_like(out_f))
    src = paddle.arange(out_size, dtype="float32") * ratio
    lower = paddle.floor(src)
    weight = src - lower
    lower = lower.astype("int64")
    upper = paddle.minimum(lower + 1, in_size.astype("int64") - 1)
    return lower, upper, weight


def _resize_by_gather(x: paddle.Tensor, like: paddle.Tensor) -> paddle.Tensor:
    """:func:`resize` as gathers of the two neighbouring columns, then rows, and linear blends:
    ops that Paddle Inference runs under oneDNN and that ONNX converters lower to Gather/Range.
    Columns first, since the model only upsamples: the (slower) last-axis gather then runs on
    fewer rows."""
    in_shape, out_shape = paddle.shape(x), paddle.shape(like)
    left, right, w = _linear_taps(in_shape[3], out_shape[3])
    x_left = paddle.gather(x, left, axis=3)
    x = x_left + (paddle.gather(x, right, axis=3) - x_left) * w.reshape([1, 1, 1, -1]).astype(x.dtype)
    top, bottom, w = _linear_taps(in_shape[2], out_shape[2])
    x_top = paddle.gather(x, top, axis=2)
    # oneDNN broadcasts a (1, 1, H, 1) operand ~30x slower than a (1, 1, H, W) one: expand first
    w = w.reshape([1, 1, -1, 1]).expand([1, 1, out_shape[2], out_shape[3]]).astype(x.dtype)
    return x_top + (paddle.gather(x, bottom, axis=2) - x_top) * w


class PReLU(nn.PReLU):
    """``nn.PReLU`` (one slope) with a faster eager CPU inference path.

    Paddle 3.3's CPU ``prelu`` kernel is ~5x slower than ``leaky_relu``, which computes the same
    ``x if x > 0 else slope * x`` bit for bit when given the slope as a number. That path is taken
    only when nothing needs the slope's gradient or a graph: eval mode, gradients off, eager, CPU.
    """

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if (self._num_parameters == 1 and not self.training and not paddle.is_grad_enabled()
                and paddle.in_dynamic_mode() and x.place.is_cpu_place()):
            return F.leaky_relu(x, float(self._weight[0]))
        return super().forward(x)


class Activation(nn.Layer):
    """A named activation slot; holds its layer as ``act_func`` (checkpoint contract)."""

    def __init__(self, act: str = "prelu"):
        super().__init__()
        if act == "prelu":
            self.act_func = PReLU()
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
