"""paddleseg.core.infer: whole-image, sliding-window and augmented inference keep the input's size
and agree where they must (a pixel-wise model gives the same answer whatever the windows or flips)."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddleseg.core.infer import aug_inference, inference, slide_inference, window_starts


class PixelModel(paddle.nn.Layer):
    """A 1x1 conv: every pixel's logits depend on that pixel only, so windows and flips are exact."""

    def __init__(self):
        super().__init__()
        paddle.seed(0)
        self.conv = paddle.nn.Conv2D(3, 4, 1)

    def forward(self, x):
        return [self.conv(x)]


class StridedModel(paddle.nn.Layer):
    """Outputs at half resolution, like a network without final upsampling."""

    def forward(self, x):
        return [F.avg_pool2d(paddle.concat([x, -x], axis=1), 2, ceil_mode=True)]


@pytest.fixture
def image():
    return paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 3, 37, 53)).astype("float32"))


def test_window_starts_cover_and_end_at_border():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(3, 4, 2) == [0]


def test_inference_returns_input_size_even_if_model_does_not(image):
    out = inference(StridedModel(), image)
    assert out.shape == [1, 6, 37, 53]


def test_slide_equals_whole_image_for_pixelwise_model(image):
    model = PixelModel()
    whole = inference(model, image).numpy()
    slid = slide_inference(model, image, crop_size=[20, 16], stride=[13, 9]).numpy()
    np.testing.assert_allclose(slid, whole, rtol=1e-5, atol=1e-6)
    assert np.allclose(inference(model, image, is_slide=True, crop_size=64, stride=32).numpy(), whole, atol=1e-6)


def test_slide_without_sizes_is_an_error(image):
    with pytest.raises(ValueError, match="crop_size"):
        inference(PixelModel(), image, is_slide=True)


def test_aug_with_flips_equals_plain_softmax_for_pixelwise_model(image):
    model = PixelModel()
    plain = F.softmax(inference(model, image), axis=1).numpy()
    aug = aug_inference(model, image, flip_horizontal=True, flip_vertical=True).numpy()
    np.testing.assert_allclose(aug, plain, rtol=1e-5, atol=1e-6)


def test_aug_multi_scale_has_input_size_and_is_a_distribution(image):
    out = aug_inference(PixelModel(), image, scales=(0.5, 0.75, 1.3)).numpy()
    assert out.shape == (1, 4, 37, 53)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
