from paddleseg.models import backbones
from paddleseg.models.espnetv2 import EESPNetHead, ESPNetV2

__all__ = ["backbones", "ESPNetV2", "EESPNetHead"]
