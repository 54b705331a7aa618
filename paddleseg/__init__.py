"""ESPNetV2 semantic segmentation on PaddlePaddle 3.

Importing the package imports no Paddle: the training components register themselves when a registry
is first looked up (:func:`paddleseg.cvlibs.manager.load_components`), and ``paddleseg.deploy`` runs
on a machine without Paddle.
"""
__version__ = "0.1.0"

from paddleseg.utils import quiet

quiet.install()  # before Paddle is imported: its ccache notice fires at import (see utils/quiet.py)
