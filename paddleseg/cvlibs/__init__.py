from paddleseg.cvlibs import manager
from paddleseg.cvlibs.config import Config

__all__ = ["Config", "manager"]
