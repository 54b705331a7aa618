"""EESPNet, the backbone of ESPNetv2.

Mehta, Rastegari, Shapiro, Hajishirzi: "ESPNetv2: A Light-weight, Power Efficient, and General
Purpose Convolutional Neural Network", CVPR 2019 (Section 3: the EESP unit, its strided form, and
the network built from them).

Attribute names (``group_conv_in``, ``spp_modules``, ``group_conv_out``, ``bn_act``, ``level3_0``, …)
are fixed by the released checkpoints' state-dict keys; the docstrings use the paper's words.

Dilation: both released Cityscapes checkpoints (upstream PaddleSeg's and the reference
reproduction's) were trained with *undilated* 3×3 branches. Their code asks for the paper's
dilations but also writes ``padding='same'``, and Paddle's 'same' padding resets the dilation to 1.
So ``dilated=False`` (the default) is what loads and reproduces those checkpoints exactly;
``dilated=True`` gives the paper's dilated branches for training from scratch.

Padding: stride-2 convolutions pad as Paddle's 'SAME' does, [0, 1] on an even size and [1, 1] on an
odd one (:func:`~paddleseg.models.layers.conv_padding`), and the down-samplers' average pools pad 1 on
each side, both as the references do; each gives ``ceil(size / 2)``, so the branches of a
down-sampler and the image pyramid of its shortcut agree at any size.
"""
import numbers
from typing import Callable, List, Optional, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddleseg.checkpoint.weights import load_entire_model
from paddleseg.cvlibs import manager
from paddleseg.models.layers import BNPReLU, ConvBN, ConvBNAct, PReLU, concat, conv2d_same
from paddleseg.models.recompute import Recomputable

# effective kernel size of a branch -> dilation of its 3x3 depthwise convolution (paper, Fig. 3)
KERNEL_TO_DILATION = {3: 1, 5: 2, 7: 3, 9: 4, 11: 5, 13: 6, 15: 7, 17: 8}


def branch_dilations(branches: int, kernel_size_maximum: int, dilated: bool = True) -> List[int]:
    """Dilation per branch: kernel sizes 3, 5, 7, … above the level's cap fall back to 3, sorted.
    ``dilated=False``: all 1 (see the module docstring)."""
    if not dilated:
        return [1] * branches
    kernel_sizes = sorted(k if k <= kernel_size_maximum else 3 for k in (3 + 2 * i for i in range(branches)))
    return [KERNEL_TO_DILATION[k] for k in kernel_sizes]


class EESP(Recomputable):
    """Extremely Efficient Spatial Pyramid unit: reduce → split → transform → merge (Section 3.1).

    ``reduce``: 1×1 group conv (groups = branches) to ``out/branches`` channels. ``branches``:
    3×3 depthwise dilated convs, one dilation each. ``hierarchical fusion``: branch k adds branch
    k-1's output before the concat. ``merge``: BN-PReLU, 1×1 group conv + BN, then (stride 1) a
    residual add when shapes match and PReLU. With ``stride=2`` (inside a :class:`DownSampler`)
    the merged map is returned before the residual and activation. ``dilated``: see the module
    docstring.

    Stride-2 branches pad as 'SAME' (dilated ones as 'SAME' would with the dilation kept, so every
    branch centres its windows on the same pixels; :class:`~paddleseg.models.layers.StridedDilatedConv2D`).

    Shapes: (N, in, H, W) → (N, out, ceil(H/stride), ceil(W/stride)). Recomputable in the backward
    pass (:mod:`paddleseg.models.recompute`).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, branches: int = 4,
                 kernel_size_maximum: int = 7, dilated: bool = False):
        super().__init__()
        if out_channels % branches:
            raise ValueError(f"EESP: out_channels {out_channels} is not divisible by {branches} branches")
        self.stride = stride
        width = out_channels // branches
        self.group_conv_in = ConvBNAct(in_channels, width, 1, groups=branches)
        self.spp_modules = nn.LayerList([conv2d_same(width, width, 3, stride, dilation=d, groups=width)
                                         for d in branch_dilations(branches, kernel_size_maximum, dilated)])
        self.group_conv_out = ConvBN(out_channels, out_channels, 1, groups=branches)
        self.bn_act = BNPReLU(out_channels)
        self._act = PReLU()
        self.residual = stride == 1 and in_channels == out_channels

    def compute(self, x: paddle.Tensor) -> paddle.Tensor:
        reduced = self.group_conv_in(x)
        fused = [self.spp_modules[0](reduced)]
        for branch in self.spp_modules[1:]:
            fused.append(branch(reduced) + fused[-1])
        merged = self.group_conv_out(self.bn_act(concat(fused)))
        if self.stride == 2:
            return merged
        if self.residual:
            merged = merged + x
        return self._act(merged)


class DownSampler(Recomputable):
    """Strided EESP (Section 3.2, Fig. 1c): halves the resolution, widens ``in → out`` channels.

    A stride-2 EESP makes ``out - in`` channels and is concatenated with a 3×3 stride-2 average pool
    of its input; the input image, already average-pooled to the same size by the caller, adds a
    shortcut (3×3 conv-BN-act 3→3, then 1×1 conv-BN 3→out); PReLU last.

    ``input_shortcut``: ``'prelu'`` (upstream PaddleSeg) or ``'relu'`` with a conv bias (the reference
    reproduction) for the 3×3 layer of the shortcut. Recomputable in the backward pass, as a whole
    (:mod:`paddleseg.models.recompute`).
    """

    def __init__(self, in_channels: int, out_channels: int, branches: int = 4, kernel_size_maximum: int = 9,
                 in_image_channels: int = 3, input_shortcut: str = "prelu", dilated: bool = False):
        super().__init__()
        if out_channels <= in_channels:
            raise ValueError(f"DownSampler: out_channels ({out_channels}) must exceed in_channels ({in_channels})")
        self.eesp = EESP(in_channels, out_channels - in_channels, stride=2, branches=branches,
                         kernel_size_maximum=kernel_size_maximum, dilated=dilated)
        # pad 1 on each side, not 'SAME', as in both references (the checkpoints were trained so)
        self.avg = nn.AvgPool2D(kernel_size=3, stride=2, padding=1)
        self.shortcut_layer = nn.Sequential(
            ConvBNAct(in_image_channels, in_image_channels, 3, act=input_shortcut, bias=input_shortcut == "relu"),
            ConvBN(in_image_channels, out_channels, 1))
        self._act = PReLU()

    def compute(self, x: paddle.Tensor, image: paddle.Tensor) -> paddle.Tensor:
        """``image``: the network input average-pooled to this level's output size."""
        out = concat([self.avg(x), self.eesp(x)])
        return self._act(out + self.shortcut_layer(image))


def pool_image(image: paddle.Tensor) -> paddle.Tensor:
    """One step of the image pyramid for the shortcuts: 3×3 stride-2 average pool padded 1 on each
    side, as the references' (ceil(H/2), like every stride-2 layer here)."""
    return F.avg_pool2d(image, kernel_size=3, stride=2, padding=1)


SCALES = (0.5, 1.0, 1.5, 2.0)


def check_scale(owner: str, scale: float) -> None:
    """``scale`` must be one of :data:`SCALES` (the paper's widths; the released checkpoints are
    s=2.0): other values would build an untested network of another width."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or scale not in SCALES:
        raise ValueError(f"{owner}: scale must be one of {', '.join(map(str, SCALES))}, got {scale!r}")


def check_drop_prob(owner: str, drop_prob: float) -> None:
    """A dropout probability in [0, 1)."""
    if isinstance(drop_prob, bool) or not isinstance(drop_prob, numbers.Real) or not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"{owner}: drop_prob must be a number in [0, 1), got {drop_prob!r}")


# Upper bounds, checked before any weight is allocated (a typo of a few zeros would otherwise ask for
# terabytes): labels are 8-bit class ids, so at most 256 classes; the input shortcut's 3x3 convolution
# holds in_channels² weights, and images are read with at most 4 channels.
MAX_CHANNELS = {"num_classes": (256, "labels are 8-bit class ids"),
                "in_channels": (64, "the input shortcut holds in_channels² × 9 weights")}


def check_channels(owner: str, name: str, value: int) -> None:
    """A count of classes or channels: an integer >= 1 and at most its :data:`MAX_CHANNELS` bound."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")
    maximum, reason = MAX_CHANNELS.get(name, (None, ""))
    if maximum is not None and value > maximum:
        raise ValueError(f"{owner}: {name} must be at most {maximum} ({reason}), got {value!r}")


def level_channels(scale: float, branches: int = 4, base: int = 32) -> Tuple[int, int, int, int]:
    """Widths of level1..level4: s=2.0 → (32, 128, 256, 512), s=1.0 → (32, 64, 128, 256)."""
    width = int(base * scale)
    width = -(-width // branches) * branches  # round up to a multiple of the branch count
    return (min(width, base), width * 2, width * 4, width * 8)


# The reference reproduction names BN layers ``_bn`` and PReLU slots ``_act`` (except in the
# down-samplers' 3×3 shortcut layer, which keeps ``_batch_norm`` and has a ReLU): our layers keep
# upstream's names, and EESPNetHead translates at the state-dict boundary.
def reference_key(key: str) -> str:
    """Our state-dict key in the reference reproduction's names."""
    if ".shortcut_layer.0." in key:
        return key
    return key.replace("._batch_norm.", "._bn.").replace("._prelu.act_func.", "._act.")


def backbone_keys(backbone: nn.Layer) -> Callable[[str], Optional[str]]:
    """Maps a key of a backbone-only file, or of a whole segmentation model's file (``backbone.``
    prefix; the head's keys are left out), in upstream's or the reference's names, to ``backbone``'s."""
    names = {}
    for key in backbone.state_dict():
        names[reference_key(key)] = key
        names[key] = key

    def key_map(key: str) -> Optional[str]:
        if key.startswith("backbone."):
            return names.get(key[len("backbone."):], key[len("backbone."):])
        return names.get(key, key) if key.startswith("level") else None

    return key_map


@manager.BACKBONES.add_component
class EESPNet(nn.Layer):
    """The EESPNet backbone (Section 4.1, Table 1): four levels at strides 2, 4, 8, 16.

    level1: 3×3 stride-2 conv-BN-PReLU. level2: a down-sampler. level3: a down-sampler and 3 EESP
    units. level4: a down-sampler and 7 EESP units. Kernel-size caps per level 13, 11, 9, 7.

    Args:
        in_channels: image channels.
        scale: width multiplier, 0.5, 1.0, 1.5 or 2.0.
        drop_prob: accepted for the reference configs; the backbone has no dropout (nor has either
            reference's).
        input_shortcut: activation of the down-samplers' image shortcut: ``'relu'`` (with conv bias,
            the reference reproduction's released checkpoint, this class's default as in its configs) or
            ``'prelu'`` (upstream PaddleSeg, used by :class:`~paddleseg.models.ESPNetV2`).
        dilated: the paper's dilated EESP branches; False (default) matches the released checkpoints
            (module docstring).
        pretrained: weights to load strictly after building (a path, URL or released name): a
            backbone-only file, or a whole ESPNetV2 checkpoint of either released form, whose
            ``backbone.`` keys are taken (:func:`backbone_keys`).

    Forward: (N, 3, H, W) → level1..level4 feature maps; widths in ``out_channels``.
    """

    def __init__(self, in_channels: int = 3, scale: float = 1.0, drop_prob: float = 0.1,
                 input_shortcut: str = "relu", dilated: bool = False, pretrained: Optional[str] = None):
        super().__init__()
        check_channels("EESPNet", "in_channels", in_channels)
        check_scale("EESPNet", scale)
        check_drop_prob("EESPNet", drop_prob)
        if input_shortcut not in ("relu", "prelu"):
            raise ValueError(f"EESPNet: input_shortcut must be 'relu' or 'prelu', got {input_shortcut!r}")
        self.dilated = dilated
        self.out_channels = level_channels(scale)
        c1, c2, c3, c4 = self.out_channels
        caps = (13, 11, 9, 7)

        def down(cin, cout, cap):
            return DownSampler(cin, cout, kernel_size_maximum=cap, in_image_channels=in_channels,
                               input_shortcut=input_shortcut, dilated=dilated)

        self.level1 = ConvBNAct(in_channels, c1, 3, stride=2)
        self.level2 = down(c1, c2, caps[0])
        self.level3_0 = down(c2, c3, caps[1])
        self.level3 = nn.LayerList([EESP(c3, c3, kernel_size_maximum=caps[2], dilated=dilated) for _ in range(3)])
        self.level4_0 = down(c3, c4, caps[2])
        self.level4 = nn.LayerList([EESP(c4, c4, kernel_size_maximum=caps[3], dilated=dilated) for _ in range(7)])
        if pretrained:
            load_entire_model(self, pretrained, key_map=backbone_keys(self))

    def set_recompute(self, on: bool = True) -> None:
        """Recompute the down-samplers (each as a whole, its strided EESP included) and the EESP units
        in the backward pass of training instead of keeping their activations (``train.py
        --recompute``, :mod:`paddleseg.models.recompute`). level1 is kept: it would save one level-1
        map, and its input, the image, needs no gradient, which Paddle's recompute warns about."""
        for down in (self.level2, self.level3_0, self.level4_0):
            down.recompute = on
            down.eesp.recompute = False  # inside a recomputed block: blocks must not nest
        for unit in list(self.level3) + list(self.level4):
            unit.recompute = on

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        # The image pyramid for the shortcuts takes a fixed number of pooling steps per level
        # (not a loop on shapes), so the exported graph has no while-ops.
        image = pool_image(pool_image(x))
        out_l1 = self.level1(x)
        out_l2 = self.level2(out_l1, image)
        image = pool_image(image)
        out_l3 = self.level3_0(out_l2, image)
        for unit in self.level3:
            out_l3 = unit(out_l3)
        image = pool_image(image)
        out_l4 = self.level4_0(out_l3, image)
        for unit in self.level4:
            out_l4 = unit(out_l4)
        return [out_l1, out_l2, out_l3, out_l4]
