"""paddleseg.utils.charts: the numbers behind the heat map, and pictures that are drawn (not blank)
without touching matplotlib's process-wide state."""
import subprocess
import sys

import numpy as np
import pytest

from paddleseg.utils import charts
from paddleseg.utils.visualize import get_palette

from conftest import REPO


def distinct_colours(picture: np.ndarray) -> int:
    return len(np.unique(picture.reshape(-1, 3), axis=0))


def test_rows_are_normalised_and_absent_classes_are_nan():
    shares = charts.row_normalised(np.array([[3, 1, 0], [0, 0, 0], [1, 1, 2]]))
    np.testing.assert_allclose(shares[0], [0.75, 0.25, 0.0])
    assert np.isnan(shares[1]).all()
    np.testing.assert_allclose(shares[2], [0.25, 0.25, 0.5])


@pytest.mark.slow
def test_charts_are_drawn_with_their_content():
    names = [f"class {i}" for i in range(5)]
    matrix = np.diag([50, 40, 30, 0, 10]) + 2
    heat = charts.confusion_heatmap(matrix, names)
    bars = charts.class_iou_bars([0.9, 0.5, np.nan, 0.1, 0.7], names, get_palette(5))
    curves = charts.training_curves({"loss_main": ([1, 2, 3], [2.0, 1.5, 1.0])}, ([1, 2, 3], [1e-3, 5e-4, 0.0]),
                                    ([3], [0.4]))
    for picture in (heat, bars, curves):
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
        assert distinct_colours(picture) > 50  # text, axes, a colour scale: far from one flat value
    assert (np.abs(bars.astype(int) - get_palette(5)[0]).sum(axis=2) == 0).sum() > 500  # class 0's bar colour
    without_eval = charts.training_curves({"loss_main": ([1, 2], [2.0, 1.5])}, ([1, 2], [1e-3, 5e-4]), ([], []))
    assert without_eval.shape == curves.shape and (without_eval != curves).any()


_NO_GLOBAL_STATE = """
import matplotlib
from paddleseg.utils import charts
charts.class_iou_bars([0.5, 0.2], ["a", "b"])
import sys
print("matplotlib.pyplot" in sys.modules, matplotlib.rcParams._get_backend_or_none())
"""


def test_drawing_leaves_pyplot_and_the_backend_alone():
    done = subprocess.run([sys.executable, "-c", _NO_GLOBAL_STATE], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "None"]
