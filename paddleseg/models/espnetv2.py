"""ESPNetv2 for semantic segmentation.

Mehta, Rastegari, Shapiro, Hajishirzi: "ESPNetv2: A Light-weight, Power Efficient, and General
Purpose Convolutional Neural Network", CVPR 2019 (Section 4.2, segmentation).

Two registered forms build the same network and load the two released Cityscapes checkpoints:
``ESPNetV2`` (upstream PaddleSeg's config and state-dict keys) and ``EESPNetHead`` with an
``EESPNet`` backbone (the reference reproduction's). Head attribute names (``proj_l4_c``,
``eesp_psp``, ``project_l3``, ``act_l3``, ``project_l2``, ``project_l1``) are fixed by those keys.
"""
from typing import Dict, List, Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddleseg.checkpoint.weights import load_entire_model
from paddleseg.cvlibs import manager
from paddleseg.models import layer_config
from paddleseg.models.backbones.eespnet import (
    EESP,
    EESPNet,
    check_channels,
    check_drop_prob,
    check_scale,
    reference_key,
)
from paddleseg.models.layer_config import Configurable
from paddleseg.models.layers import BNPReLU, ConvBNAct, DepthwiseConv2D, Resize, concat
from paddleseg.models.recompute import Recomputable, run


class PSPModule(Recomputable):
    """Pyramid pooling on the level-3 map: 4 cascaded 3×3 stride-2 average pools, each followed by
    a 3×3 depthwise conv and bilinear upsampling back; the input and the 4 maps are concatenated and
    projected by a 1×1 conv-BN-PReLU. (N, C, H, W) → (N, out, H, W). Recomputable in the backward
    pass (:mod:`paddleseg.models.recompute`)."""

    def __init__(self, in_channels: int, out_channels: int, levels: int = 4):
        super().__init__()
        self.stages = nn.LayerList([
            DepthwiseConv2D(in_channels, 3)
            for _ in range(levels)])
        self.project = ConvBNAct(in_channels * (levels + 1), out_channels, 1)
        self.resize = Resize()

    def compute(self, x: paddle.Tensor) -> paddle.Tensor:
        pyramid = [x]
        pooled = x
        for stage in self.stages:
            # 'SAME' as in both references: [0, 1] on an even size, [1, 1] on an odd one (no fixed
            # padding matches both); padding is excluded from the average
            pooled = F.avg_pool2d(pooled, kernel_size=3, stride=2, padding="SAME", exclusive=True)
            pyramid.append(self.resize(stage(pooled), x))
        return self.project(concat(pyramid))


class ESPNetV2Head(nn.Layer, Configurable):
    """The segmentation decoder of ESPNetv2 on top of an :class:`EESPNet` backbone.

    level4 is projected to level3's width, upsampled and concatenated with level3, then an EESP unit
    and the PSP module; dropout + 1×1 conv to classes, BN-PReLU (the level-3 class map); upsampled and
    concatenated with level2, 1×1 conv-BN-PReLU; upsampled and concatenated with level1, dropout + 1×1
    conv; upsampled to the input size. Every upsampling goes to the size of the map it joins, so any
    input size works.

    Returns ``[logits]`` in eval mode and ``[logits, aux_logits]`` in training mode, where
    ``aux_logits`` is the level-3 class map upsampled as the references do, in three bilinear steps
    (to level 2's size, level 1's, the input's); both (N, classes, H, W). ``train_outputs`` declares
    that count, so the loss can be checked against it when the config is built.

    :meth:`set_recompute` trades memory for time in training (``train.py --recompute``). The layers'
    forms (fast CPU kernels, the traced graph's resizes) come from the layer configuration when the
    model is built (:mod:`paddleseg.models.layer_config`).
    """

    train_outputs = 2  # main logits, auxiliary (level-3) logits

    def __init__(self, backbone: EESPNet, num_classes: int = 19, drop_prob: float = 0.1):
        super().__init__()
        self.backbone = backbone
        c1, c2, c3, c4 = backbone.out_channels
        self.proj_l4_c = ConvBNAct(c4, c3, 1)
        self.eesp_psp = nn.Sequential(EESP(2 * c3, c3, kernel_size_maximum=7, dilated=backbone.dilated),
                                      PSPModule(c3, c3))
        self.project_l3 = nn.Sequential(nn.Dropout2D(p=drop_prob), nn.Conv2D(c3, num_classes, 1, bias_attr=False))
        self.act_l3 = BNPReLU(num_classes)
        self.project_l2 = ConvBNAct(c2 + num_classes, num_classes, 1)
        self.project_l1 = nn.Sequential(nn.Dropout2D(p=drop_prob),
                                        nn.Conv2D(c1 + num_classes, num_classes, 1, bias_attr=False))
        self.resize = Resize()
        self.num_classes = num_classes
        self.recompute = False  # the context block (set_recompute)
        self.recompute_refine = False
        self.configure(layer_config.current())

    def set_recompute(self, on: bool = True, head: bool = False) -> None:
        """Recompute blocks in the backward pass of training instead of keeping their activations
        (:mod:`paddleseg.models.recompute`): the backbone's down-samplers and EESP units
        (:meth:`EESPNet.set_recompute`) and the refinement with levels 2 and 1 (:meth:`refine`: 1x1
        convolutions on wide maps, much memory for little compute); with ``head`` also the level-3
        context up to the EESP unit (:meth:`context`) and the PSP module on its own (in one block with
        the unit, its backward would run beside the unit's activations made again). ``train.py
        --recompute`` takes the first set: measured (docs/performance.md), the refinement saves memory
        for no measurable time, while the context and PSP cost far more time for what they save. A model built
        for a traced graph never recomputes (:func:`paddleseg.models.recompute.applies`)."""
        self.backbone.set_recompute(on)
        unit, psp = self.eesp_psp
        unit.recompute = False  # inside the context block: blocks must not nest
        psp.recompute = on and head
        self.recompute = on and head
        self.recompute_refine = on

    def context(self, out_l3: paddle.Tensor, out_l4: paddle.Tensor) -> paddle.Tensor:
        """level 4 projected, upsampled and joined to level 3, then the EESP unit (``eesp_psp[0]``)."""
        l4_to_l3 = self.resize(self.proj_l4_c(out_l4), out_l3)
        return self.eesp_psp[0](concat([out_l3, l4_to_l3]))

    def refine(self, classes_l3: paddle.Tensor, out_l2: paddle.Tensor, out_l1: paddle.Tensor) -> paddle.Tensor:
        """The level-3 class map joined with level 2, then level 1: class scores at level 1's size."""
        merged_l2 = self.project_l2(concat([out_l2, self.resize(classes_l3, out_l2)]))
        return self.project_l1(concat([out_l1, self.resize(merged_l2, out_l1)]))

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        out_l1, out_l2, out_l3, out_l4 = self.backbone(x)
        unit, psp = self.eesp_psp
        merged_l3 = psp(run(self, [self.proj_l4_c, unit], self.context, out_l3, out_l4))
        classes_l3 = self.act_l3(self.project_l3(merged_l3))
        # the upsampling to the input stays out of the recomputed block: run again, it would cost more
        # time per step than one level-1 class map is worth (docs/performance.md)
        refined = run(self, [self.project_l2, self.project_l1], self.refine, classes_l3, out_l2, out_l1,
                      switch="recompute_refine")
        logits = self.resize(refined, x)
        if self.training:
            # the references' hierarchical upsampling (level 3 -> 2 -> 1 -> input), as two GEMMs in
            # eager execution: bilinear_interp's gradient is slow on CPU (layers.upsample_by_matmul)
            return [logits, self.resize.through(classes_l3, out_l2, out_l1, x)]
        return [logits]


@manager.MODELS.add_component
class ESPNetV2(ESPNetV2Head):
    """ESPNetV2 in upstream PaddleSeg's form: ``{type: ESPNetV2, in_channels, scale, num_classes,
    drop_prob}``; loads upstream's released Cityscapes checkpoint (70.88% mIoU).

    ``pretrained``: optional checkpoint to load (strictly) after building: a path, an ``http(s)://`` URL
    or a released model name (``espnetv2_cityscapes_upstream``; see :mod:`paddleseg.checkpoint.released`).
    ``dilated``: the paper's dilated EESP branches (False matches the released checkpoints; see
    :mod:`paddleseg.models.backbones.eespnet`).
    """

    def __init__(self, num_classes: int = 19, in_channels: int = 3, scale: float = 1.0, drop_prob: float = 0.1,
                 pretrained: Optional[str] = None, dilated: bool = False):
        check_channels("ESPNetV2", "num_classes", num_classes)
        check_channels("ESPNetV2", "in_channels", in_channels)
        check_scale("ESPNetV2", scale)
        check_drop_prob("ESPNetV2", drop_prob)
        super().__init__(EESPNet(in_channels, scale, input_shortcut="prelu", dilated=dilated), num_classes, drop_prob)
        if pretrained:
            load_entire_model(self, pretrained)


@manager.MODELS.add_component
class EESPNetHead(ESPNetV2Head):
    """ESPNetV2 in the reference reproduction's form: ``{type: EESPNetHead, backbone: {type: EESPNet,
    scale, drop_prob}, num_classes, drop_prob}``; its state dict uses the reproduction's key names, so
    its released checkpoint (69.56% mIoU) loads and our checkpoints load in the reproduction.
    """

    def __init__(self, backbone: EESPNet, num_classes: int = 19, drop_prob: float = 0.1,
                 pretrained: Optional[str] = None):
        if not isinstance(backbone, EESPNet):
            raise TypeError(f"EESPNetHead needs an EESPNet backbone, got {type(backbone).__name__}")
        check_channels("EESPNetHead", "num_classes", num_classes)
        check_drop_prob("EESPNetHead", drop_prob)
        super().__init__(backbone, num_classes, drop_prob)
        if pretrained:
            load_entire_model(self, pretrained)

    def state_dict(self, *args, **kwargs) -> Dict[str, paddle.Tensor]:
        own = super().state_dict(*args, **kwargs)
        return type(own)((reference_key(k), v) for k, v in own.items())

    def set_state_dict(self, state_dict: Dict, *args, **kwargs):
        to_own = {reference_key(k): k for k in super().state_dict()}
        return super().set_state_dict({to_own.get(k, k): v for k, v in state_dict.items()}, *args, **kwargs)
