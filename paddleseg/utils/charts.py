"""The charts users look at, drawn by matplotlib and returned as RGB pictures.

    picture = confusion_heatmap(matrix.matrix, names)      # (H, W, 3) uint8
    save_rgb(picture, "report/confusion_matrix.png")       # paddleseg.utils.visualize: atomic
    class_iou_bars(matrix.iou(), names, get_palette(19))
    training_curves({"loss_main": ([10, 20], [1.2, 0.9])}, ([10, 20], [1e-3, 9e-4]), ([20], [0.31]))

Figures are built with matplotlib's object API on an explicit Agg canvas: nothing here touches pyplot or
the process-wide backend (``matplotlib.use``), so importing this module changes no global state and
works without a display.
"""
from typing import TYPE_CHECKING, Dict, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:  # for the annotations only
    from matplotlib.figure import Figure

# matplotlib takes about a second to import: it is imported by the first chart, not by every
# training or evaluation start that imports this module

Series = Tuple[Sequence[float], Sequence[float]]  # (x values, y values)
DPI = 100


def new_figure(width: float, height: float) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def render(figure: "Figure") -> np.ndarray:
    """The figure drawn by Agg as an RGB uint8 array (H, W, 3)."""
    canvas = figure.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row (a ground-truth class) divided by its sum: the share of that class's pixels predicted
    as each class. Rows of classes absent from the ground truth are NaN."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    out = np.full(matrix.shape, np.nan)
    np.divide(matrix, totals, out=out, where=totals > 0)
    return out


def confusion_heatmap(matrix: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """A heat map of the row-normalised confusion matrix (ground truth down, prediction across), each
    cell of at least 1% labelled with its percentage; classes absent from the ground truth are grey."""
    shares = row_normalised(matrix)
    count = len(names)
    size = max(5.0, 0.36 * count + 2.2)
    figure = new_figure(size + 1.0, size)
    axes = figure.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps["Blues"].with_extremes(bad="#d9d9d9")
    image = axes.imshow(np.ma.masked_invalid(shares), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.04, pad=0.02, label="share of the ground-truth class's pixels")
    axes.set_xticks(range(count), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    axes.set_yticks(range(count), names, fontsize=8)
    axes.set_xlabel("prediction")
    axes.set_ylabel("ground truth")
    axes.set_title("Confusion matrix (rows normalised)")
    for row in range(count):
        for column in range(count):
            value = shares[row, column]
            if value == value and value >= 0.01:  # not NaN
                axes.text(column, row, f"{100 * value:.0f}", ha="center", va="center", fontsize=6,
                          color="white" if value > 0.55 else "black")
    return render(figure)


def class_iou_bars(iou: Sequence[float], names: Sequence[str], palette: Optional[np.ndarray] = None) -> np.ndarray:
    """Horizontal bars of each class's IoU in its palette colour, the value at the end of each bar
    ('n/a' for a class absent from ground truth and prediction) and the mean as a dashed line."""
    iou = np.asarray(iou, dtype=np.float64)
    count = len(names)
    figure = new_figure(7.0, max(3.0, 0.3 * count + 1.2))
    axes = figure.add_subplot()
    rows = np.arange(count)
    colors = (palette[:count] / 255.0) if palette is not None else "#4c72b0"
    axes.barh(rows, np.nan_to_num(iou), color=colors, edgecolor="black", linewidth=0.5)
    for row, value in zip(rows, iou):
        axes.text((value if value == value else 0.0) + 0.01, row, f"{value:.3f}" if value == value else "n/a",
                  va="center", fontsize=8)
    valid = iou[~np.isnan(iou)]
    if valid.size:
        axes.axvline(valid.mean(), color="black", linestyle="--", linewidth=1, label=f"mIoU {valid.mean():.3f}")
        axes.legend(loc="lower right", fontsize=8)
    axes.set_yticks(rows, names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0.0, 1.08)
    axes.set_xlabel("IoU")
    axes.set_title("IoU per class")
    axes.grid(axis="x", alpha=0.3)
    return render(figure)


def training_curves(losses: Dict[str, Series], lr: Series, miou: Series) -> np.ndarray:
    """Three panels against the iteration: the loss terms, the learning rate and the evaluation mIoU."""
    figure = new_figure(8.0, 8.0)
    loss_axes, lr_axes, miou_axes = figure.subplots(3, 1, sharex=True)
    for name, (x, y) in losses.items():
        loss_axes.plot(x, y, linewidth=1, label=name)
    if losses:
        loss_axes.legend(fontsize=8)
    loss_axes.set_ylabel("loss")
    loss_axes.set_title("Training")
    lr_axes.plot(*lr, color="tab:green", linewidth=1)
    lr_axes.set_ylabel("learning rate")
    if len(miou[0]):
        miou_axes.plot(*miou, color="tab:red", marker="o", linewidth=1)
        best = int(np.argmax(miou[1]))
        miou_axes.annotate(f"best {miou[1][best]:.4f}", (miou[0][best], miou[1][best]), textcoords="offset points",
                           xytext=(0, 6), ha="center", fontsize=8)
        miou_axes.margins(y=0.2)
    else:
        miou_axes.text(0.5, 0.5, "no evaluation yet (train with --do_eval)", transform=miou_axes.transAxes,
                       ha="center", va="center", color="gray")
    miou_axes.set_ylabel("eval mIoU")
    miou_axes.set_xlabel("iteration")
    for axes in (loss_axes, lr_axes, miou_axes):
        axes.grid(alpha=0.3)
    return render(figure)
