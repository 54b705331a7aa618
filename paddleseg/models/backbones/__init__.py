from paddleseg.models.backbones.eespnet import EESPNet

__all__ = ["EESPNet"]
