"""Small building blocks shared by the backbone and the head.

``PReLU``, ``DepthwiseConv2D`` and ``Resize`` have several forms of the same function, one of which
is chosen when the layer is built, from the layer configuration (:mod:`paddleseg.models.layer_config`).

State-dict names are a checkpoint contract: ``_conv``, ``_batch_norm`` and ``_prelu.act_func`` are
the names upstream PaddleSeg's released ESPNetV2 checkpoint uses, so the attributes keep them.
"""
import functools
from typing import List, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.autograd import PyLayer

from paddleseg.models import layer_config
from paddleseg.models.layer_config import Configurable, LayerConfig
from paddleseg.utils.paddle_compat import leaky_relu_grad, prelu_slope, prelu_slope_count

Padding = Union[int, str]


def conv_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> Padding:
    """The ``padding`` of an ``nn.Conv2D`` that samples where Paddle's ``'SAME'`` does, at any size.

    Stride 1: the symmetric ``dilation * (k - 1) / 2`` ('SAME' for odd kernels, but keeping the
    dilation, which Paddle's 'SAME' resets to 1). Stride 2, dilation 1: ``'SAME'`` itself. It pads
    ``max((ceil(n / 2) - 1) * 2 + k - n, 0)`` in total, the smaller half before: [0, 1] on an even
    size and [1, 1] on an odd one for k = 3. That depends on the size, so no fixed number can match it
    on both (the released checkpoints were trained with 'SAME'); every backend used here resolves it
    at run time (Paddle Inference with oneDNN, and ONNX as ``auto_pad=SAME_UPPER``). Stride 2 with a
    dilation has no static form: :func:`conv2d_same` builds a :class:`StridedDilatedConv2D` for it.
    """
    if stride == 1:
        return dilation * (kernel_size - 1) // 2
    if stride != 2:
        raise ValueError(f"conv_padding supports stride 1 or 2, got {stride}")
    if dilation != 1:
        raise ValueError(f"a stride-2 convolution with dilation {dilation} has no static 'SAME' padding "
                         f"(use conv2d_same)")
    return "SAME"


class StridedDilatedConv2D(nn.Conv2D):
    """A stride-2 dilated ``nn.Conv2D`` padded as 'SAME' would pad it if Paddle's 'SAME' kept the
    dilation (TensorFlow's rule): windows centred where the undilated 'SAME' branches of the same
    EESP unit centre theirs, so the hierarchical fusion adds aligned maps at odd and even sizes
    (a fixed padding would shift the dilated branches by one pixel on one of the two).

    'SAME' pads ``half = dilation * (k - 1) / 2`` after and, before, ``half - 1`` on an even size but
    ``half`` on an odd one: output ``o`` is centred on input ``2o + 1 - size % 2``. The convolution
    pads a fixed ``[half - 1, half]``; the extra row (column) on an odd size is a zero prepended
    by concat and a slice whose start is shape arithmetic. Not a ``pad`` op with computed amounts:
    paddle2onnx 2.1 writes the fill value of a converted ``pad`` from uninitialised memory (garbage in
    about one export of three). ``weight`` and ``bias`` are ``nn.Conv2D``'s, so state-dict keys do
    not change. (N, C, H, W) → (N, out, ceil(H/2), ceil(W/2)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, groups: int = 1,
                 bias: bool = False):
        if kernel_size % 2 == 0 or dilation < 2:
            raise ValueError(f"StridedDilatedConv2D needs an odd kernel_size and a dilation >= 2, got "
                             f"{kernel_size} and {dilation}")
        half = dilation * (kernel_size - 1) // 2
        super().__init__(in_channels, out_channels, kernel_size, stride=2, padding=[half - 1, half, half - 1, half],
                         dilation=dilation, groups=groups, bias_attr=None if bias else False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return super().forward(_zero_before_if_odd(_zero_before_if_odd(x, 2), 3))


def _zero_before_if_odd(x: paddle.Tensor, axis: int) -> paddle.Tensor:
    """``x`` with one zero row (axis 2) or column (axis 3) prepended if its size there is odd."""
    shape = paddle.shape(x)
    zero_shape = [shape[0], shape[1], shape[2], shape[3]]
    zero_shape[axis] = 1
    padded = paddle.concat([paddle.zeros(zero_shape, x.dtype), x], axis=axis)
    return paddle.slice(padded, axes=[axis], starts=[1 - shape[axis] % 2], ends=[shape[axis] + 1])


def conv2d_same(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                groups: int = 1, bias: bool = False) -> nn.Conv2D:
    """An ``nn.Conv2D`` padded as 'SAME' (:func:`conv_padding`); stride 2 with a dilation gets a
    :class:`StridedDilatedConv2D`."""
    if stride == 2 and dilation != 1:
        return StridedDilatedConv2D(in_channels, out_channels, kernel_size, dilation, groups, bias)
    if stride == 1 and dilation == 1 and groups == in_channels == out_channels and kernel_size % 2:
        return DepthwiseConv2D(in_channels, kernel_size, bias)
    return nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                     padding=conv_padding(kernel_size, stride, dilation), dilation=dilation, groups=groups,
                     bias_attr=None if bias else False)


class DepthwiseConv2D(nn.Conv2D, Configurable):
    """A stride-1, undilated depthwise ``nn.Conv2D`` (odd kernel, 'SAME' padding) with a faster eager
    CPU backward. (N, C, H, W) → (N, C, H, W); ``weight`` (and ``bias``) are ``nn.Conv2D``'s, so
    state-dict keys do not change.

    Paddle 3.3's CPU gradient kernel of ``depthwise_conv2d`` spends several times the forward's time on
    the input's gradient (docs/performance.md). At stride 1 with symmetric
    padding that gradient is itself a depthwise convolution, of the output's gradient with the kernel
    turned by 180°, which the forward kernel computes in forward time; the weight's gradient comes
    from Paddle's kernel with the input's gradient switched off (:class:`_DepthwiseConv`). Backward:
    faster (docs/performance.md). The weight's gradient is bit for bit Paddle's; the input's equal to float
    rounding (the same products summed in another order).

    ``variant`` (from the layer configuration): ``'conv_backward'`` that path (eager on the CPU), or
    ``'depthwise_conv2d'`` Paddle's op alone (GPU, traced graphs).
    """

    VARIANTS = ("conv_backward", "depthwise_conv2d")

    def __init__(self, channels: int, kernel_size: int, bias: bool = False):
        padding = (kernel_size - 1) // 2
        super().__init__(channels, channels, kernel_size, padding=padding, groups=channels,
                         bias_attr=None if bias else False)
        self.same_padding = padding  # nn.Conv2D keeps its own in a private attribute
        self.configure(layer_config.current())

    def configure(self, config: LayerConfig) -> None:
        super().configure(config)
        self.variant = "conv_backward" if config.eager_cpu else "depthwise_conv2d"

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.variant == "depthwise_conv2d" or not paddle.is_grad_enabled() or x.stop_gradient:
            return super().forward(x)
        out = _DepthwiseConv.apply(x, self.weight, self.same_padding)
        return out if self.bias is None else out + self.bias.reshape([1, -1, 1, 1])


class _DepthwiseConv(PyLayer):
    """Stride-1 depthwise convolution whose input gradient is the forward kernel's (:class:`DepthwiseConv2D`)."""

    @staticmethod
    def forward(ctx, x: paddle.Tensor, weight: paddle.Tensor, padding: int) -> paddle.Tensor:
        ctx.padding = padding
        # decided now: under recompute (models/recompute.py) the saved weight comes back as a new tensor
        ctx.weight_needs_grad = not weight.stop_gradient
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, padding=padding, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, grad: paddle.Tensor):
        x, weight = ctx.saved_tensor()
        groups = weight.shape[0]
        x_grad = F.conv2d(grad, paddle.flip(weight, [2, 3]), padding=ctx.padding, groups=groups)
        if not ctx.weight_needs_grad:
            return x_grad, None
        with paddle.enable_grad():  # the weight's gradient alone: Paddle's kernel skips the input's
            leaf = weight.detach()
            leaf.stop_gradient = False
            out = F.conv2d(x.detach(), leaf, padding=ctx.padding, groups=groups)
            (weight_grad,) = paddle.grad([out], [leaf], [grad])
        return x_grad, weight_grad


class Resize(nn.Layer, Configurable):
    """Bilinear (align_corners=True) resizing of ``x`` to the spatial size of ``like``: (N, C, h, w),
    (·, ·, H, W) → (N, C, H, W). No parameters, so no state-dict keys.

    Sizes come from the tensors, so any input size works (the references upsample by a fixed factor
    and break on sizes that are not multiples of 32).

    Three forms of the same function, equal to float rounding (tests/test_resize.py); ``variant``
    (from the layer configuration) names the one built:

    - ``'matmul_where_cheap'`` (eager on the CPU): two matrix products (:func:`upsample_by_matmul`)
      where that costs at most the configuration's ``matmul_resize_max_macs`` multiply-adds per output
      pixel (:func:`matmul_resize_macs`, a choice on the tensors' sizes), since Paddle's CPU
      ``bilinear_interp`` kernels (the gradient above all) are slow; else ``F.interpolate``.
    - ``'interpolate'`` (eager on a GPU): ``F.interpolate``, one kernel.
    - ``'gather'`` (traced graphs, export): :func:`resize_by_gather`, because Paddle Inference 3.3's
      oneDNN path cannot run the exported ``bilinear_interp`` op at all
      ("ConvertPirAttribute2RuntimeAttribute not support pir::ArrayAttribute<pir::DoubleAttribute>").

    :meth:`through` resizes through several sizes in turn (training's hierarchical upsampling).
    """

    VARIANTS = ("matmul_where_cheap", "interpolate", "gather")

    def __init__(self):
        super().__init__()
        self.configure(layer_config.current())

    def configure(self, config: LayerConfig) -> None:
        super().configure(config)
        self.variant = "gather" if config.traced else "matmul_where_cheap" if config.eager_cpu else "interpolate"
        self.max_macs = config.matmul_resize_max_macs

    def forward(self, x: paddle.Tensor, like: paddle.Tensor) -> paddle.Tensor:
        if self.variant == "gather":
            return resize_by_gather(x, like)
        if self.variant == "matmul_where_cheap":
            return resize_where_cheap(x, like, self.max_macs)
        return resize_by_interpolate(x, like)

    def through(self, x: paddle.Tensor, *likes: paddle.Tensor) -> paddle.Tensor:
        """``x`` resized to the size of each of ``likes`` in turn: :func:`upsample_by_matmul` (two GEMMs
        for the whole chain) in eager execution, the chain of gather forms in a traced graph."""
        if not likes:
            raise ValueError("Resize.through needs at least one tensor to take the size from")
        if self.variant == "gather":
            for like in likes:
                x = resize_by_gather(x, like)
            return x
        return upsample_by_matmul(x, *likes)


def resize_by_interpolate(x: paddle.Tensor, like: paddle.Tensor) -> paddle.Tensor:
    """:class:`Resize` by Paddle's ``bilinear_interp``."""
    return F.interpolate(x, size=paddle.shape(like)[2:], mode="bilinear", align_corners=True)


def resize_where_cheap(x: paddle.Tensor, like: paddle.Tensor,
                       max_macs: float = layer_config.MATMUL_RESIZE_MAX_MACS) -> paddle.Tensor:
    """:class:`Resize` by two GEMMs (:func:`upsample_by_matmul`) where they cost at most ``max_macs``
    multiply-adds per output pixel, else by ``bilinear_interp``. Eager only: the choice reads the sizes
    as Python numbers."""
    if matmul_resize_macs(x.shape[2:], like.shape[2:]) <= max_macs:
        return upsample_by_matmul(x, like)
    return resize_by_interpolate(x, like)


def matmul_resize_macs(in_size: Sequence[int], out_size: Sequence[int]) -> float:
    """Multiply-adds per output pixel of :func:`upsample_by_matmul` from ``in_size`` (h, w) to
    ``out_size``: ``x @ A_w^T`` costs ``in_h * in_w * out_w`` per image and channel, ``A_h @ (...)``
    ``out_h * in_h * out_w``."""
    (in_h, in_w), (out_h, _) = in_size, out_size
    return in_h * in_w / out_h + in_h


def upsample_by_matmul(x: paddle.Tensor, *likes: paddle.Tensor) -> paddle.Tensor:
    """:class:`Resize` of ``x`` to the size of each of ``likes`` in turn, computed as two matrix
    products, ``A_h @ (x @ A_w^T)``, where ``A_h`` and ``A_w`` are the products of the steps' dense
    (out, in) interpolation matrices of each axis: a chain of per-axis linear maps is again one.
    Equal to the chain of ``F.interpolate`` calls to float rounding (tests/test_resize.py); the
    matrices are composed in float64 and rounded once.

    For training's auxiliary output, the level-3 class map upsampled level by level to the input
    (8x in three steps, the references' hierarchical upsampling): the backward is then two GEMMs,
    where the gradient kernel of bilinear_interp on CPU is slow for a large output whatever the input
    size (64x128 -> 512x1024 in three steps, forward + backward: faster than three F.interpolate calls
    or one 8x call; docs/performance.md). Each output pixel
    costs :func:`matmul_resize_macs` multiply-adds whatever the number of steps, so it pays from a
    small input, not for a single 2x step of a large map; :func:`resize_where_cheap` chooses by that
    count. Eager only (the sizes are read as Python numbers): traced graphs resize step by step
    (:meth:`Resize.through`).
    """
    if not likes:
        raise ValueError("upsample_by_matmul needs at least one tensor to take the size from")
    heights = tuple([x.shape[2]] + [like.shape[2] for like in likes])
    widths = tuple([x.shape[3]] + [like.shape[3] for like in likes])
    rows = paddle.to_tensor(_interpolation_matrix(heights), dtype=x.dtype)
    columns = paddle.to_tensor(_interpolation_matrix(widths).T, dtype=x.dtype)
    return paddle.matmul(rows, paddle.matmul(x, columns))


@functools.lru_cache(maxsize=32)
def _interpolation_matrix(sizes: Tuple[int, ...]) -> np.ndarray:
    """(sizes[-1], sizes[0]) float32 matrix of align_corners=True linear interpolation along one axis
    through the given sizes in turn: the product of the steps' matrices (:func:`_linear_step`),
    taken in float64."""
    matrix = np.eye(sizes[0])
    for in_size, out_size in zip(sizes[:-1], sizes[1:]):
        matrix = _linear_step(in_size, out_size) @ matrix
    matrix = matrix.astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def _linear_step(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) float64 matrix of one align_corners=True linear interpolation; the source positions
    and weights are computed in float32 as Paddle's kernel does (:func:`_linear_taps`)."""
    ratio = np.float32(in_size - 1) / np.float32(max(out_size - 1, 1))
    src = np.arange(out_size, dtype=np.float32) * ratio
    lower = np.floor(src).astype(np.int64)
    weight = src - lower.astype(np.float32)
    upper = np.minimum(lower + 1, in_size - 1)
    matrix = np.zeros((out_size, in_size), np.float64)
    np.add.at(matrix, (np.arange(out_size), lower), 1 - weight)
    np.add.at(matrix, (np.arange(out_size), upper), weight)
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


def resize_by_gather(x: paddle.Tensor, like: paddle.Tensor) -> paddle.Tensor:
    """:class:`Resize` as gathers of the two neighbouring columns, then rows, and linear blends:
    ops that Paddle Inference runs under oneDNN and that ONNX converters lower to Gather/Range.
    Columns first, since the model only upsamples: the (slower) last-axis gather then runs on
    fewer rows."""
    in_shape, out_shape = paddle.shape(x), paddle.shape(like)
    left, right, w = _linear_taps(in_shape[3], out_shape[3])
    x_left = paddle.gather(x, left, axis=3)
    x = x_left + (paddle.gather(x, right, axis=3) - x_left) * w.reshape([1, 1, 1, -1]).astype(x.dtype)
    top, bottom, w = _linear_taps(in_shape[2], out_shape[2])
    x_top = paddle.gather(x, top, axis=2)
    # oneDNN broadcasts a (1, 1, H, 1) operand far slower than a (1, 1, H, W) one: expand first
    w = w.reshape([1, 1, -1, 1]).expand([1, 1, out_shape[2], out_shape[3]]).astype(x.dtype)
    return x_top + (paddle.gather(x, bottom, axis=2) - x_top) * w


class PReLU(nn.PReLU, Configurable):
    """``nn.PReLU`` (one slope) with faster, leaner eager CPU paths for training and inference.

    Paddle 3.3's CPU ``prelu`` kernels are slow: forward and backward take several times the time of
    ``leaky_relu``'s (docs/performance.md), and ESPNetV2 has ~50 PReLUs per
    step. ``leaky_relu`` given the slope as a number computes ``x if x > 0 else slope * x`` bit for bit;
    :class:`_OneSlopePReLU` adds the backward.

    ``variant`` (from the layer configuration): ``'leaky_relu'`` that path (eager on the CPU), or
    ``'prelu'`` Paddle's op (GPU, where reading the slope as a number would sync the device; traced
    graphs, where it is no number). A layer given one slope per channel (export) always runs ``prelu``.
    """

    VARIANTS = ("leaky_relu", "prelu")

    def __init__(self):
        super().__init__()
        self.configure(layer_config.current())

    def configure(self, config: LayerConfig) -> None:
        super().configure(config)
        self.variant = "leaky_relu" if config.eager_cpu else "prelu"

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.variant == "prelu" or prelu_slope_count(self) != 1:
            return super().forward(x)
        slope = prelu_slope(self)
        if not paddle.is_grad_enabled() or (x.stop_gradient and slope.stop_gradient):
            return F.leaky_relu(x, float(slope[0]))
        return _OneSlopePReLU.apply(x, slope)


class _OneSlopePReLU(PyLayer):
    """PReLU with one slope ``a`` computed by ``leaky_relu``'s kernels, keeping the output for backward.

    With ``a > 0`` the output ``y`` has the sign of the input ``x``, so the input's gradient, ``grad``
    where ``x > 0`` and ``a * grad`` elsewhere, is ``leaky_relu``'s gradient kernel applied at ``y``
    (bit for bit the same as at ``x``), and the slope's gradient ``sum(grad * min(x, 0))`` is
    ``sum(grad * min(y, 0)) / a``, equal to float rounding (``y = a * x`` rounded once; the float32
    sum runs in another order than ``prelu``'s: a float64 one costs time in casts). Keeping
    ``y`` rather than ``x`` lets ``x`` (a BatchNorm output or a residual sum, which nothing else keeps)
    be freed after the forward: the next convolution keeps ``y`` anyway. That saves one activation
    per PReLU, a large share of the step's peak memory (docs/performance.md). With ``a <= 0`` the sign is lost, so ``x``
    is kept instead. One convention differs from ``prelu``'s kernel: at exactly ``x == 0`` the input's
    gradient is ``grad`` (``leaky_relu``'s choice) rather than ``a * grad``; both are subgradients.
    """

    @staticmethod
    def forward(ctx, x: paddle.Tensor, slope: paddle.Tensor) -> paddle.Tensor:
        ctx.slope = float(slope[0])
        y = F.leaky_relu(x, ctx.slope)
        ctx.kept_output = ctx.slope > 0
        ctx.save_for_backward(y if ctx.kept_output else x)
        return y

    @staticmethod
    def backward(ctx, grad: paddle.Tensor):
        (kept,) = ctx.saved_tensor()
        x_grad = leaky_relu_grad(kept, grad, ctx.slope)
        slope_grad = paddle.sum(grad * paddle.clip(kept, max=0.0))
        if ctx.kept_output:
            slope_grad = slope_grad / ctx.slope
        return x_grad, slope_grad.reshape([1])


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
        self._conv = conv2d_same(in_channels, out_channels, kernel_size, stride, groups=groups, bias=bias)
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
