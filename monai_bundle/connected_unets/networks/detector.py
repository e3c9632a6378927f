"""The mass detector's network: a small 2-D ResNet with a feature pyramid under MONAI's RetinaNet heads.

Why our own feature extractor: MONAI's ``resnet_fpn_feature_extractor`` and ``BackboneWithFPN``
take the backbone's intermediate layers through torchvision (``IntermediateLayerGetter``), which
this project does not depend on; the ResNet (``monai.networks.nets.ResNet``), the feature pyramid
(``monai.networks.blocks.FeaturePyramidNetwork``) and the heads (``monai.apps.detection``'s
``RetinaNet``) are MONAI's own. The default sizes are chosen for a CPU: one basic block per level,
16 to 128 channels, a 64-channel pyramid (about 1.3 M parameters; a 512 x 512 image costs about
2 GMAC forward).

Input (B, in_channels, H, W), H and W multiples of :func:`size_divisible`; output the RetinaNet
dict of classification and box-regression maps, one per pyramid level (see ``RetinaNetDetector``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence

import torch
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
from monai.apps.detection.networks.retinanet_network import RetinaNet
from monai.apps.detection.utils.ATSS_matcher import ATSSMatcher
from monai.networks.blocks.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
from monai.networks.nets.resnet import ResNet, ResNetBlock
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["ATSSRetinaNetDetector", "ResNetFPN", "detector_network", "size_divisible"]


class ResNetFPN(nn.Module):
    """The levels ``returned_layers`` (1..4) of a 2-D MONAI ResNet, joined by a feature pyramid of
    ``out_channels`` channels plus one max-pooled level on top (as torchvision's RetinaNet).

    Level k of the ResNet has stride 2 ** (k + 1) (a stride-2 first convolution, a max pooling,
    then one halving per level after the first)."""

    def __init__(
        self,
        in_channels: int = 1,
        layers: Sequence[int] = (1, 1, 1, 1),
        planes: Sequence[int] = (16, 32, 64, 128),
        returned_layers: Sequence[int] = (2, 3, 4),
        out_channels: int = 64,
    ) -> None:
        super().__init__()
        if not returned_layers or min(returned_layers) < 1 or max(returned_layers) > 4:
            raise ValueError(f"returned_layers {list(returned_layers)}: levels of the ResNet are 1 to 4")
        self.backbone = ResNet(
            block=ResNetBlock, layers=list(layers), block_inplanes=list(planes), spatial_dims=2, n_input_channels=in_channels,
            conv1_t_size=7, conv1_t_stride=2, feed_forward=False,
        )  # fmt: skip
        self.returned_layers = tuple(int(k) for k in returned_layers)
        self.fpn = FeaturePyramidNetwork(
            spatial_dims=2,
            in_channels_list=[int(planes[k - 1]) * ResNetBlock.expansion for k in self.returned_layers],
            out_channels=out_channels,
            extra_blocks=LastLevelMaxPool(2),
        )
        self.out_channels = out_channels  # RetinaNet reads it

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        net = self.backbone
        x = net.maxpool(net.act(net.bn1(net.conv1(x))))
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        for level in range(1, max(self.returned_layers) + 1):
            x = getattr(net, f"layer{level}")(x)
            if level in self.returned_layers:
                features[str(level)] = x
        return self.fpn(features)


def size_divisible(returned_layers: Sequence[int] = (2, 3, 4)) -> int:
    """What H and W must be multiples of: the stride of the max-pooled top level."""
    return 2 ** (max(returned_layers) + 2)


def detector_network(
    num_anchors: int,
    in_channels: int = 1,
    layers: Sequence[int] = (1, 1, 1, 1),
    planes: Sequence[int] = (16, 32, 64, 128),
    returned_layers: Sequence[int] = (2, 3, 4),
    fpn_channels: int = 64,
) -> RetinaNet:
    """MONAI's 2-D RetinaNet (one class: mass) on :class:`ResNetFPN`; ``num_anchors`` per location
    must match the anchor generator. ``fpn_channels`` must be a multiple of 16 (the heads' GroupNorm)."""
    if fpn_channels % 16:
        raise ValueError(f"fpn_channels {fpn_channels}: must be a multiple of 16 (RetinaNet's heads use GroupNorm with 16 groups)")
    extractor = ResNetFPN(in_channels, layers, planes, returned_layers, fpn_channels)
    return RetinaNet(
        spatial_dims=2, num_classes=1, num_anchors=num_anchors, feature_extractor=extractor, size_divisible=size_divisible(returned_layers)
    )


class ATSSRetinaNetDetector(RetinaNetDetector):
    """MONAI's ``RetinaNetDetector`` whose anchors are matched by MONAI's ``ATSSMatcher`` alone.

    MONAI's own ``compute_anchor_matched_idxs`` first asks ``isinstance(matcher, Matcher)`` of
    torchvision's ``Matcher``, which raises without torchvision even when the matcher is the ATSS
    one; this override makes MONAI's ATSS calls directly, so training, validation and inference
    never touch torchvision. (The sampler, MONAI's ``HardNegativeSampler``, is checked by MONAI
    before torchvision's, so it needs no override.) Set the matcher with ``set_atss_matcher``."""

    def compute_anchor_matched_idxs(
        self, anchors: list[torch.Tensor], targets: list[dict[str, torch.Tensor]], num_anchor_locs_per_level: Sequence[int]
    ) -> list[torch.Tensor]:
        if not isinstance(self.proposal_matcher, ATSSMatcher):
            raise TypeError(f"the mass detector matches anchors with MONAI's ATSSMatcher (set_atss_matcher), not {type(self.proposal_matcher).__name__}")
        matched = []
        for anchors_per_image, targets_per_image in zip(anchors, targets):
            boxes = targets_per_image[self.target_box_key]
            if boxes.numel() == 0:  # an image without a mass: every anchor is a negative
                matched.append(torch.full((anchors_per_image.size(0),), -1, dtype=torch.int64, device=anchors_per_image.device))
                continue
            _, matched_per_image = self.proposal_matcher(
                boxes.to(anchors_per_image.device), anchors_per_image, num_anchor_locs_per_level, self.num_anchors_per_loc
            )
            if torch.max(matched_per_image) < 0:
                logger.warning("no anchor matches the boxes %s: check the anchor shapes against the masses", boxes.tolist())
            matched.append(matched_per_image)
        return matched
