"""ESPNetV2 semantic segmentation on PaddlePaddle 3. Importing the package registers its components."""
__version__ = "0.1.0"

from paddleseg.utils import quiet

quiet.install()  # before Paddle is imported: its ccache notice fires at import (see utils/quiet.py)

from paddleseg import models  # noqa: F401  (registers MODELS and BACKBONES)
from paddleseg import losses, optimizers  # noqa: F401
from paddleseg import datasets, transforms  # noqa: F401
