"""paddleseg.deploy.smoothing: the moving average follows its formula, carries the past along the flow
(newly seen pixels keep the frame's own probabilities), and refuses exports that give labels only."""
import numpy as np
import pytest

from paddleseg.deploy.errors import DeployError
from paddleseg.deploy.smoothing import TemporalSmoother, check_scores, to_probabilities


def test_probabilities_of_logits_and_of_a_softmax_export():
    logits = np.array([[[[0.0]], [[np.log(3.0)]]]], np.float32)  # (1, 2, 1, 1)
    np.testing.assert_allclose(to_probabilities(logits, "none")[0, :, 0, 0], [0.25, 0.75], rtol=1e-6)
    np.testing.assert_allclose(to_probabilities(logits, None)[0, :, 0, 0], [0.25, 0.75], rtol=1e-6)
    probabilities = np.array([[[[0.1]], [[0.9]]]], np.float32)
    assert to_probabilities(probabilities, "softmax") is probabilities
    with pytest.raises(DeployError, match=r"output of shape \[1, 4, 4\]"):
        to_probabilities(np.zeros((1, 4, 4)), "none")
    with pytest.raises(DeployError, match="--output_op softmax"):
        check_scores("argmax")
    check_scores("softmax"), check_scores("none"), check_scores(None)


def test_the_average_weighs_the_past_by_a():
    smoother = TemporalSmoother(0.75)
    first, second = np.zeros((2, 3, 4), np.float32), np.ones((2, 3, 4), np.float32)
    first[0] = 1.0
    second[0] = 0.0
    np.testing.assert_array_equal(smoother(first), first)
    out = smoother(second)
    np.testing.assert_allclose(out[0], 0.75) and np.testing.assert_allclose(out[1], 0.25)
    np.testing.assert_allclose(smoother(second)[0], 0.75 * 0.75)  # the state is the smoothed frame
    assert TemporalSmoother(0.0)(second) is second


def test_the_past_is_carried_along_the_flow_before_blending():
    h, w = 6, 12
    previous = np.zeros((2, h, w), np.float32)
    previous[1] = 1.0
    previous[:, :, 4] = [[1.0], [0.0]]  # class 0 in column 4
    current = previous.copy()
    current[:, :, 4] = [[0.0], [1.0]]
    current[:, :, 6] = [[1.0], [0.0]]  # the object moved right by 2 columns
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = -2.0  # each pixel was 2 columns to the left in the previous frame
    for warp, column in ((True, 6), (False, 4)):
        smoother = TemporalSmoother(0.5, warp=warp)
        smoother(previous, None)
        out = smoother(current, flow)
        assert out[0, 0, column] == pytest.approx(1.0 if warp else 0.5)  # carried: the object stays sharp
    assert np.allclose(out[:, :, 6], [[0.5], [0.5]])  # in place: smeared over both columns
    warped = TemporalSmoother(0.5, warp=True)
    warped(previous, None)
    out = warped(current, flow)
    np.testing.assert_array_equal(out[:, :, :2], current[:, :, :2])  # newly seen: the frame's own


def test_warp_needs_a_flow_and_a_weight_in_range():
    smoother = TemporalSmoother(0.5, warp=True)
    smoother(np.ones((1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="flow"):
        smoother(np.ones((1, 2, 2), np.float32), None)
    for weight in (-0.1, 1.0):
        with pytest.raises(ValueError):
            TemporalSmoother(weight)
