"""paddleseg.deploy.flicker: labels that only move with the scene are no flicker, changed labels are
counted exactly, newly seen and ignored pixels are left out, and DIS recovers a known motion (also at
a reduced working size)."""
import numpy as np
import pytest

from paddleseg.deploy.flicker import FlickerMeter, FlowEstimator, carry_labels, changed_fraction, resize_flow

from video_helpers import moving_frames


def shift_flow(h, w, dx, dy=0.0):
    """The flow of a scene moving by (dx, dy) pixels from the previous frame to this one."""
    return np.broadcast_to(np.array([-dx, -dy], np.float32), (h, w, 2)).copy()


def stripes(h, w, offset=0):
    return ((np.arange(w)[None, :] + offset) // 5 % 3).repeat(h, axis=0).astype(np.uint8)


def test_labels_that_move_with_the_scene_are_no_flicker():
    previous, current = stripes(8, 40), stripes(8, 40, offset=-3)  # the scene moved right by 3 pixels
    assert changed_fraction(current, previous, shift_flow(8, 40, 0)) > 0.3  # raw change counts the motion
    assert changed_fraction(current, previous, shift_flow(8, 40, 3)) == 0.0
    carried, inside = carry_labels(previous, shift_flow(8, 40, 3))
    assert inside[:, :3].sum() == 0 and inside[:, 3:].all()  # the first 3 columns are newly seen


def test_changed_pixels_are_counted_among_those_that_count():
    previous = np.zeros((10, 10), np.uint8)
    current = previous.copy()
    current[0, :5] = 1  # 5 changed pixels
    current[9, :] = 255  # changed too, unless 255 is ignored
    assert changed_fraction(current, previous, shift_flow(10, 10, 0)) == pytest.approx(15 / 100)
    assert changed_fraction(current, previous, shift_flow(10, 10, 0), ignore_index=255) == pytest.approx(5 / 90)
    assert np.isnan(changed_fraction(current, previous, shift_flow(10, 10, 20)))  # nothing seen before


def test_the_meter_averages_from_the_second_frame():
    meter = FlickerMeter()
    a, b = np.zeros((4, 5), np.uint8), np.ones((4, 5), np.uint8)
    assert meter.update(a, None) is None and meter.mean is None
    assert meter.update(b, shift_flow(4, 5, 0)) == 1.0
    assert meter.update(b, shift_flow(4, 5, 0)) == 0.0
    assert meter.mean == 0.5


@pytest.mark.parametrize("max_side", [1024, 48])
def test_dis_recovers_a_pan(max_side):
    previous, current = moving_frames(2, 96, 64, step=3)  # the texture moves left by 3 pixels
    flow = FlowEstimator(max_side=max_side).flow(previous, current)
    assert flow.shape == (64, 96, 2)
    inner = flow[8:-8, 8:-8 - 3]
    assert np.median(inner[..., 0]) == pytest.approx(3.0, abs=0.3) and np.abs(np.median(inner[..., 1])) < 0.3


def test_resized_flow_scales_its_vectors():
    flow = shift_flow(10, 20, 2, 1)
    big = resize_flow(flow, (20, 60))
    assert big.shape == (20, 60, 2) and np.allclose(big[..., 0], -6) and np.allclose(big[..., 1], -2)
