"""What temporal smoothing buys and costs, measured on the synthetic moving-camera clip: the flicker of the
predicted labels (against the optical flow of the input frames, as predict.py reports it, and against
the clip's known motion), mIoU against the clip's labels, and the time smoothing and flow add per frame.
With --figure, a picture of a few frames side by side: input | prediction | its flicker | smoothed with
flow | its flicker (docs/images/video_smoothing.png).

    python tools/video_stability.py [--config configs/quickstart/espnetv2_synthetic.yml \\
        --model_path output/quickstart/best_model/model.pdparams] [--frames 48] [--size 256 128] \\
        [--figure docs/images/video_smoothing.png] [--json out.json]

The clip (paddleseg.datasets.synthetic.write_synthetic_clip) is written to a temporary folder as an MP4
and predicted through predict.py's path (paddleseg.core.predict.predict_video) once per setting.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SETTINGS: List[Tuple[str, float, bool]] = [("off", 0.0, False), ("A=0.5", 0.5, False), ("A=0.5, flow", 0.5, True),
                                           ("A=0.7", 0.7, False), ("A=0.7, flow", 0.7, True),
                                           ("A=0.8, flow", 0.8, True)]


def predict_clip(model, cfg, video: Path, out: Path, smoothing: float, flow: bool) -> Tuple[List[np.ndarray], float]:
    """The label map of every frame of ``video`` and the flicker predict.py reports."""
    from paddleseg.core.predict import build_transforms, predict_video, transform_configs
    from paddleseg.deploy.inputs import collect_video
    from paddleseg.deploy.pipeline import VideoSettings
    from paddleseg.deploy.video import open_source
    from paddleseg.utils.visualize import get_palette

    settings = VideoSettings(smoothing=smoothing, flow=flow, save_labels=True)
    with open_source(collect_video(video)) as source:
        summary = predict_video(model, build_transforms(transform_configs(cfg)), "clip", source, out,
                                get_palette(model.num_classes), video=settings, progress=False)
    labels = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((out / "clip").iterdir())]
    return labels, summary.flicker


def measure(labels: List[np.ndarray], truth, known_flows) -> Dict[str, float]:
    from paddleseg.deploy.flicker import FlickerMeter
    from paddleseg.utils.metrics import ConfusionMatrix

    matrix, meter = ConfusionMatrix(19), FlickerMeter()
    for label, true_label, flow in zip(labels, truth.labels, known_flows):
        matrix.update(label, true_label)
        meter.update(label, flow)
    return {"miou": matrix.miou(), "flicker_known_motion": meter.mean}


def costs(size: Sequence[int], classes: int = 19) -> Dict[str, float]:
    """Milliseconds per frame of the DIS flow (input frames at ``size``) and of the moving average of
    ``classes`` probability maps at that size, with and without the warp."""
    from paddleseg.deploy.flicker import FlowEstimator
    from paddleseg.deploy.smoothing import TemporalSmoother

    rng = np.random.default_rng(0)
    w, h = size
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), np.uint8), (5, 5), 0) for _ in range(2)]
    probabilities = rng.random((classes, h, w)).astype(np.float32)
    estimator = FlowEstimator()
    flow = estimator.flow(frames[0], frames[1])

    def ms(fn, runs=10):
        fn()
        start = time.perf_counter()
        for _ in range(runs):
            fn()
        return (time.perf_counter() - start) / runs * 1000

    result = {"flow_ms": ms(lambda: estimator.flow(frames[0], frames[1]))}
    for name, warp in (("average_ms", False), ("average_warped_ms", True)):
        smoother = TemporalSmoother(0.7, warp)
        smoother(probabilities, flow)
        result[name] = ms(lambda: smoother(probabilities, flow))
    return result


def flicker_map(labels: np.ndarray, previous: Optional[np.ndarray], flow: Optional[np.ndarray]) -> np.ndarray:
    """White where the label differs from the previous frame's carried by ``flow``, grey where newly seen."""
    from paddleseg.deploy.flicker import carry_labels

    picture = np.zeros(labels.shape + (3,), np.uint8)
    if previous is not None:
        carried, inside = carry_labels(previous, flow)
        picture[~inside] = 80
        picture[inside & (carried != labels)] = 255
    return picture


def figure(path: Path, truth, flows, plain: List[np.ndarray], smoothed: List[np.ndarray], rows: Sequence[int],
           palette: np.ndarray) -> None:
    """A PNG: a row per frame in ``rows``, the five columns of the module docstring, titled."""
    titles = ["input", "prediction", "its flicker", "smoothed (A=0.7, flow)", "its flicker"]
    h, w = truth.frames[0].shape[:2]
    grid = []
    for t in rows:
        cells = [truth.frames[t], palette[plain[t]], flicker_map(plain[t], plain[t - 1], flows[t]),
                 palette[smoothed[t]], flicker_map(smoothed[t], smoothed[t - 1], flows[t])]
        grid.append(np.hstack([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255) for c in cells]))
    header = np.full((22, grid[0].shape[1], 3), 255, np.uint8)
    for i, title in enumerate(titles):
        cv2.putText(header, title, (i * (w + 4) + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    picture = np.vstack([header] + grid)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError(f"{path}: could not be encoded")
    path.write_bytes(data.tobytes())


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart" / "espnetv2_synthetic.yml")
    p.add_argument("--model_path", type=Path, default=REPO / "output" / "quickstart" / "best_model" / "model.pdparams")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", type=int, nargs=2, default=[256, 128], metavar=("W", "H"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", type=Path, help="write the picture here")
    p.add_argument("--figure_rows", type=int, nargs="+", default=[16, 32])
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    from paddleseg.checkpoint import load_entire_model
    from paddleseg.cvlibs import Config
    from paddleseg.datasets.synthetic import clip_flow, make_clip, write_synthetic_clip
    from paddleseg.deploy.flicker import FlowEstimator
    from paddleseg.utils.device import set_device
    from paddleseg.utils.visualize import get_palette

    set_device("cpu", 2)
    cfg = Config(str(args.config))
    model = cfg.model
    load_entire_model(model, str(args.model_path))
    width, height = args.size
    truth = make_clip(args.frames, width, height, args.seed)
    known = [None] + [clip_flow(truth.cameras[t], truth.cameras[t - 1], height, width) for t in range(1, args.frames)]
    rows, labels = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_synthetic_clip(Path(tmp) / "clip", args.frames, width, height, args.seed)
        for name, smoothing, flow in SETTINGS:
            labels[name], flicker = predict_clip(model, cfg, clip / "clip.mp4", Path(tmp) / name, smoothing, flow)
            rows.append({"setting": name, "temporal_smoothing": smoothing, "flow": flow, "flicker": flicker,
                         **measure(labels[name], truth, known)})
    off = rows[0]
    print(f"{args.frames} frames of {width}x{height} (the synthetic clip, as MP4), {args.model_path}")
    print(f"{'setting':<14}{'flicker (DIS)':>15}{'vs off':>9}{'flicker (known motion)':>24}{'vs off':>9}"
          f"{'mIoU':>9}{'vs off':>9}")
    for row in rows:
        print(f"{row['setting']:<14}{100 * row['flicker']:>14.2f}%{row['flicker'] / off['flicker'] - 1:>+9.0%}"
              f"{100 * row['flicker_known_motion']:>23.2f}%"
              f"{row['flicker_known_motion'] / off['flicker_known_motion'] - 1:>+9.0%}"
              f"{100 * row['miou']:>9.2f}{100 * (row['miou'] - off['miou']):>+9.2f}")
    spent = {f"{w}x{h}": costs((w, h)) for w, h in ((width, height), (1024, 512))}
    for size, ms in spent.items():
        print(f"cost per frame at {size}: DIS flow {ms['flow_ms']:.1f} ms, moving average {ms['average_ms']:.1f} ms, "
              f"with the warp {ms['average_warped_ms']:.1f} ms (19 classes)")
    if args.figure:
        flows = [None] + [FlowEstimator().flow(truth.frames[t - 1], truth.frames[t]) for t in range(1, args.frames)]
        palette = np.asarray(get_palette(19), np.uint8).reshape(-1, 3)
        figure(args.figure, truth, flows, labels["off"], labels["A=0.7, flow"], args.figure_rows, palette)
        print(f"wrote {args.figure}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "costs": spent}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
