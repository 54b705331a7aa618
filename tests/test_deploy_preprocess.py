"""paddleseg.deploy.preprocess: deploy.yaml's transforms give the training transforms' input, float32."""
import cv2
import numpy as np

from paddleseg.deploy.config import Normalize, Resize
from paddleseg.deploy.preprocess import make_preprocess
from paddleseg.transforms import Compose
from paddleseg.transforms import Normalize as TrainNormalize
from paddleseg.transforms import Resize as TrainResize


def test_normalize_and_resize_equal_the_training_transforms_to_float32_rounding():
    """Tolerance: one float32 step (the training Normalize computes its lookup table in float64, this
    one in float32, as tools/infer.py always did: its outputs stay byte-identical)."""
    image = np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    ours = make_preprocess([Resize(40, 20, "CUBIC"), Normalize((0.1, 0.2, 0.3), (0.5, 0.6, 0.7))])(image)
    theirs, _ = Compose([TrainResize((40, 20), interp="CUBIC"), TrainNormalize((0.1, 0.2, 0.3), (0.5, 0.6, 0.7))])(
        image, None, np.random.default_rng(0))
    assert ours.shape == (1, 3, 20, 40) and ours.dtype == np.float32 and ours.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(ours[0], theirs, rtol=0, atol=2.5e-7)


def test_without_transforms_the_image_is_only_laid_out_as_nchw():
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    out = make_preprocess([])(image)
    np.testing.assert_array_equal(out[0, 1], image[..., 1].astype(np.float32))
    resized = make_preprocess([Resize(8, 4, "NEAREST")])(image)
    np.testing.assert_array_equal(resized[0].transpose(1, 2, 0), cv2.resize(image, (8, 4),
                                                                            interpolation=cv2.INTER_NEAREST))
