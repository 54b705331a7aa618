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


def reference(transforms, image):
    """The array-wide arithmetic (each transform over the whole HWC array, then the transposing copy)."""
    for t in transforms:
        if isinstance(t, Normalize):
            image = (image.astype(np.float32) / np.float32(255.0) - np.asarray(t.mean, np.float32)) / np.asarray(
                t.std, np.float32)
        else:
            image = cv2.resize(image, (t.width, t.height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


def test_normalizing_plane_by_plane_is_bit_for_bit_the_array_wide_arithmetic():
    rng = np.random.default_rng(1)
    for shape in [(1, 1, 3), (7, 13, 3), (37, 61, 3), (256, 512, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        image[0, 0] = (0, 255, 128)
        for transforms in ([Normalize((0.5,) * 3, (0.5,) * 3)],
                           [Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))],
                           [Resize(9, 5, "LINEAR"), Normalize((0.1, 0.2, 0.3), (0.7, 0.01, 3.0))],
                           [Normalize((0.1, 0.2, 0.3), (0.7, 0.6, 0.5)), Resize(9, 5, "LINEAR")]):
            ours = make_preprocess(transforms)(image)
            assert ours.dtype == np.float32 and ours.flags["C_CONTIGUOUS"]
            np.testing.assert_array_equal(ours, reference(transforms, image))
    # a view that is not contiguous (a crop) goes the same way
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)[3:30, 5:44]
    normalize = [Normalize((0.3, 0.4, 0.5), (0.2, 0.3, 0.4))]
    np.testing.assert_array_equal(make_preprocess(normalize)(image), reference(normalize, image))
