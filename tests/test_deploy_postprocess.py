"""paddleseg.deploy.postprocess: label maps from each output op (or from the output's rank, for upstream
exports that do not say), a model output that does not fit deploy.yaml named, labels fit to the image."""
import numpy as np
import pytest

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.postprocess import fit_to_image, to_labels

SCORES = np.random.default_rng(0).standard_normal((2, 5, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("op", ["softmax", "none", None])
def test_scores_give_their_argmax(op):
    labels = to_labels(SCORES, op, 2)
    assert labels.dtype == np.uint8 and labels.shape == (2, 3, 4)
    np.testing.assert_array_equal(labels, SCORES.argmax(axis=1))


@pytest.mark.parametrize("op", ["argmax", None])
def test_labels_stay_labels(op):
    labels = SCORES.argmax(axis=1).astype(np.int64)
    np.testing.assert_array_equal(to_labels(labels, op, 2), labels)


@pytest.mark.parametrize("output, op, batch, message", [
    (SCORES, "argmax", 2, "shape [2, 5, 3, 4] for 2 input(s); with output_op argmax it should give (N, H, W) labels"),
    (SCORES[:, 0], "softmax", 2, "with output_op softmax it should give (N, C, H, W) scores"),
    (SCORES, None, 1, "for 1 input(s); with its output it should give (N, C, H, W) scores"),
    (np.zeros((1, 2)), None, 1, "output of shape [1, 2]"),
    (np.full((1, 2, 2), 300), "argmax", 1, "the model gave label 300"),
])
def test_an_output_that_does_not_fit_is_a_deploy_error(output, op, batch, message):
    with pytest.raises(DeployError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        to_labels(output, op, batch)


def test_fit_to_image_is_nearest_and_a_no_op_at_size():
    label = np.array([[0, 1], [2, 3]], np.uint8)
    assert fit_to_image(label, (2, 2)) is label
    np.testing.assert_array_equal(fit_to_image(label, (4, 4)), np.kron(label, np.ones((2, 2), np.uint8)))
