"""One prediction loop for every front end and backend, images and videos: read, preprocess, run,
label, save, as overlapping stages.

    summary = predict_images(plan, backend, preprocess, writer, postprocess=labels_at_image_size(op))
    summary.done, summary.skipped            # the skipped inputs, each with its reason
    summary = predict_video(video, source, backend, preprocess, save_dir, palette, postprocess=...,
                            output_op=op, settings=VideoSettings(smoothing=0.7, flow=True))

``plan`` is :func:`paddleseg.deploy.inputs.plan_outputs`' list of (image, output name); ``backend``
anything with ``run(batch) -> output`` and ``input_problem(shape)`` (:mod:`paddleseg.deploy.backends`,
or predict.py's dygraph model); ``postprocess`` turns one batch's output into a label map per image at
the image's size. An image that cannot be used (unreadable, not a regular file, above ``max_pixels``,
outside the backend's input range) is logged with its path and skipped; the others are written.

The stages run at the same time (:class:`Stages`): reading (decoding), preprocessing, for a video
the optical flow (when smoothing with flow or measuring flicker), the model (in batches of inputs of
the same size), labelling (postprocess, temporal smoothing, flicker), and writing (encoding the
pictures, the MP4), each in its own thread
and connected by queues of at most :data:`QUEUE_SIZE` items, so that memory does not grow with the
number of inputs, and the model is busy while the next inputs are read and the last ones written.
Writing happens in the calling thread, in input order; Ctrl-C and SIGTERM reach it there, and the
outputs written so far (the video's MP4 too) are whole when the run ends.

``summary.end_to_end_rate()`` is the images (frames) per second from the end of the first batch to
the last output (the first batch carries the warm-up, and the ``--benchmark`` timing of the model
alone); ``Benchmark.model_times`` the model alone.
"""
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from paddleseg.deploy.benchmark import Benchmark
from paddleseg.deploy.errors import DeployError, ImageError
from paddleseg.deploy.flicker import FlickerMeter, FlowEstimator
from paddleseg.deploy.images import MAX_PIXELS, read_rgb
from paddleseg.deploy.outputs import ADDED, PSEUDO_COLOR, OutputWriter, VideoOutputWriter, frame_name
from paddleseg.deploy.postprocess import fit_to_image, to_labels
from paddleseg.deploy.smoothing import TemporalSmoother, check_scores, to_probabilities
from paddleseg.utils.signals import interruptions_held

logger = logging.getLogger(__name__)

READ, SAVE = "read + preprocess", "postprocess + save"
QUEUE_SIZE = 2


@dataclass
class Frame:
    """One input on its way through the model: where it came from, its output name, the RGB image,
    the preprocessed input (1, 3, h, w), its position in the input, the optical flow to the previous
    frame (videos), the label map once predicted, and the seconds spent reading and labelling it."""
    source: Path
    name: Path
    image: np.ndarray
    x: Optional[np.ndarray] = None
    index: int = 0
    flow: Optional[np.ndarray] = None
    label: Optional[np.ndarray] = None
    read_seconds: float = 0.0
    label_seconds: float = 0.0


Postprocess = Callable[[np.ndarray, Sequence[Frame]], List[np.ndarray]]


@dataclass
class Summary:
    done: int = 0
    skipped: List[Tuple[Path, str]] = field(default_factory=list)
    stage_times: Dict[str, List[float]] = field(default_factory=lambda: {READ: [], SAVE: []})
    clock: List[float] = field(default_factory=list)  # [time the first batch was written, time of the last output]
    counted: int = 0  # outputs written after the first batch

    def written(self, batch_size: int) -> None:
        """Count one output written now."""
        self.done += 1
        now = time.perf_counter()
        if self.done == batch_size:
            self.clock = [now, now]
        elif self.done > batch_size:
            self.clock[1] = now
            self.counted += 1

    def end_to_end_rate(self) -> Optional[float]:
        """Outputs per second after the first batch (module docstring); None when there were none."""
        if not self.counted or self.clock[1] <= self.clock[0]:
            return None
        return self.counted / (self.clock[1] - self.clock[0])


def throughput(summary: Summary, benchmark: Benchmark) -> str:
    """One line: the model alone (the median of ``benchmark``'s runs) and end to end, in inputs per
    second, and their ratio."""
    model = benchmark.shape[0] / float(np.median(benchmark.model_times))
    rate = summary.end_to_end_rate()
    if rate is None:
        return f"throughput: model alone {model:.2f} inputs/s; end to end: too few inputs after the first batch"
    return f"throughput: model alone {model:.2f} inputs/s, end to end {rate:.2f} inputs/s ({rate / model:.2f}x)"


def labels_at_image_size(output_op: Optional[str]) -> Postprocess:
    """deploy.yaml's ``output_op`` applied to a batch's output, each label map resized (nearest) to
    its image."""
    def postprocess(output: np.ndarray, frames: Sequence[Frame]) -> List[np.ndarray]:
        labels = to_labels(output, output_op, len(frames))
        return [fit_to_image(label, frame.image.shape[:2]) for label, frame in zip(labels, frames)]

    return postprocess


# ------------------------------------------------------------------------------------------------
# stages in threads
# ------------------------------------------------------------------------------------------------
_END = object()


class _Failed:
    """An exception raised in a stage, on its way to the calling thread."""

    def __init__(self, error: BaseException):
        self.error = error


class _Stopped(BaseException):
    """The run is stopping: a stage's input ends here."""


class Stages:
    """``stages`` (each a function from an iterator to an iterator, such as a generator function) run
    on ``source`` as a chain, each in its own thread, connected by queues of at most ``queue_size``
    items; iterating over the :class:`Stages` in a ``with`` block gives the last stage's items in
    order. An exception in a stage ends the chain and is raised by that iteration; leaving the block
    (at the end, on an error, on Ctrl-C) stops every thread and waits for it."""

    POLL = 0.1  # seconds between checks of the stop flag while a queue is full or empty

    def __init__(self, source: Iterable, stages: Sequence[Callable[[Iterator], Iterator]],
                 queue_size: int = QUEUE_SIZE):
        self.stop = threading.Event()
        self.threads: List[threading.Thread] = []
        upstream = None
        for stage in stages:
            out: queue.Queue = queue.Queue(queue_size)
            self.threads.append(threading.Thread(target=self._run, args=(stage, source, upstream, out),
                                                 name=f"pipeline-{getattr(stage, '__name__', 'stage')}"))
            upstream = out
        self.results = upstream

    def _items(self, q: queue.Queue, stoppable: bool = True) -> Iterator:
        """Items of ``q`` until the end marker; a stage's failure is raised again here. A timeout on each
        get, so that a stop (in the stages) or Ctrl-C (in the calling thread, ``stoppable=False``) is seen
        at once."""
        while True:
            try:
                item = q.get(timeout=self.POLL)
            except queue.Empty:
                if stoppable and self.stop.is_set():
                    raise _Stopped from None
                continue
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def _put(self, q: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=self.POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, stage: Callable[[Iterator], Iterator], source: Iterable, upstream: Optional[queue.Queue],
             out: queue.Queue) -> None:
        try:
            for item in stage(iter(source) if upstream is None else self._items(upstream)):
                if not self._put(out, item):
                    return
            self._put(out, _END)
        except _Stopped:
            return
        except BaseException as e:  # noqa: B036 -- raised again in the calling thread
            self._put(out, _Failed(e))

    def __enter__(self) -> "Stages":
        for thread in self.threads:
            thread.start()
        return self

    def __iter__(self) -> Iterator:
        return self._items(self.results, stoppable=False)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


# ------------------------------------------------------------------------------------------------
# the stages
# ------------------------------------------------------------------------------------------------
def same_size_batches(frames: Iterator[Frame], batch_size: int) -> Iterator[List[Frame]]:
    """Batches of up to ``batch_size`` frames whose inputs have the same shape: a batch is run once
    full, and the incomplete ones at the end. Frames of other sizes wait (at most batch_size - 1 each)."""
    waiting: Dict[Tuple[int, ...], List[Frame]] = {}
    for frame in frames:
        group = waiting.setdefault(frame.x.shape, [])
        group.append(frame)
        if len(group) == batch_size:
            yield waiting.pop(frame.x.shape)
    yield from waiting.values()


def model_stage(backend, batch_size: int, benchmark: Optional[Benchmark]):
    """The stage running ``backend`` on same-size batches: (batch of frames, output) per run; the
    first batch is also timed by ``benchmark``."""
    def run_model(frames: Iterator[Frame]) -> Iterator[Tuple[List[Frame], np.ndarray]]:
        for batch in same_size_batches(frames, batch_size):
            x = np.concatenate([frame.x for frame in batch]) if len(batch) > 1 else batch[0].x
            if benchmark is not None:
                benchmark.time_model(backend.run, x)
            output = backend.run(x)
            for frame in batch:
                frame.x = None  # not needed any more: the queues hold less
            yield batch, output

    return run_model


def label_stage(postprocess: Postprocess):
    """The stage giving each frame of a batch its labels."""
    def label(batches: Iterator[Tuple[List[Frame], np.ndarray]]) -> Iterator[Frame]:
        for batch, output in batches:
            start = time.perf_counter()
            labels = postprocess(output, batch)
            seconds = (time.perf_counter() - start) / len(batch)
            for frame, label_map in zip(batch, labels):
                frame.label, frame.label_seconds = label_map, seconds
                yield frame

    return label


class _Skips:
    """Inputs skipped by any stage, in input order at the end (stages skip in their own threads)."""

    def __init__(self):
        self.found: List[Tuple[int, Path, str]] = []

    def add(self, index: int, path: Path, reason: str) -> None:
        logger.error("skipped: %s", reason)
        self.found.append((index, path, reason))

    def ordered(self) -> List[Tuple[Path, str]]:
        return [(path, reason) for _, path, reason in sorted(self.found, key=lambda s: s[0])]


def read_images(max_pixels: Optional[int], skips: _Skips):
    """The stage reading each ``(index, (path, name))`` into a :class:`Frame`; the unreadable are skipped."""
    def read(plan: Iterator[Tuple[int, Tuple[Path, Path]]]) -> Iterator[Frame]:
        for index, (path, name) in plan:
            start = time.perf_counter()
            try:
                image = read_rgb(path, max_pixels)
            except ImageError as e:
                skips.add(index, path, str(e))
                continue
            yield Frame(path, name, image, index=index, read_seconds=time.perf_counter() - start)

    return read


def _preprocess_stage(preprocess: Callable[[np.ndarray], np.ndarray], backend,
                      refused: Callable[[Frame, str], None]):
    """The stage preprocessing each frame; ``refused(frame, problem)`` is called for a frame outside the
    backend's input range (and the frame dropped, unless it raises)."""
    def prepare(frames: Iterator[Frame]) -> Iterator[Frame]:
        for frame in frames:
            start = time.perf_counter()
            frame.x = preprocess(frame.image)
            problem = backend.input_problem(frame.x.shape)
            if problem:
                refused(frame, problem)
                continue
            frame.read_seconds += time.perf_counter() - start
            yield frame

    return prepare


def preprocess_images(preprocess: Callable[[np.ndarray], np.ndarray], backend, skips: _Skips):
    """The stage preprocessing each image; one outside the backend's input range is skipped."""
    return _preprocess_stage(preprocess, backend,
                             lambda frame, problem: skips.add(frame.index, frame.source, f"{frame.source}: {problem}"))


def _write_each(frames: Iterable[Frame], write: Callable[[Frame], None], summary: Summary, batch_size: int,
                bar) -> None:
    """The calling thread's part: write each finished frame, timing it into ``summary``. Ctrl-C and SIGTERM
    are held from the write to its count, so a frame's outputs are all written or none (an image's
    pictures, a video frame's overlay and label PNG) and ``summary.done`` and the MP4's frame count are
    what was written."""
    for frame in frames:
        start = time.perf_counter()
        with interruptions_held():
            write(frame)
            summary.written(batch_size)
        summary.stage_times[READ].append(frame.read_seconds)
        summary.stage_times[SAVE].append(frame.label_seconds + time.perf_counter() - start)
        bar.update(1)


def predict_images(plan: Sequence[Tuple[Path, Path]], backend, preprocess: Callable[[np.ndarray], np.ndarray],
                   writer: OutputWriter, *, postprocess: Postprocess, max_pixels: Optional[int] = MAX_PIXELS,
                   batch_size: int = 1, benchmark: Optional[Benchmark] = None, progress: bool = False) -> Summary:
    """Predict every ``(image, output name)`` of ``plan`` into ``writer``'s folder (module docstring);
    logs what was done and, once more at the end, what was skipped."""
    summary, skips = Summary(), _Skips()
    logger.info("Predicting %d image(s) into %s", len(plan), writer.save_dir)
    stages = [read_images(max_pixels, skips), preprocess_images(preprocess, backend, skips),
              model_stage(backend, batch_size, benchmark), label_stage(postprocess)]
    with Stages(enumerate(plan), stages) as frames, tqdm(total=len(plan), desc="predict", unit="img",
                                                          disable=not progress) as bar:
        _write_each(frames, lambda f: writer.write(f.name, f.image, f.label), summary, batch_size, bar)
    summary.skipped = skips.ordered()
    logger.info("Predicted %d image(s); %d skipped", summary.done, len(summary.skipped))
    if summary.done:
        logger.info("Overlays: %s (colour maps: %s)", writer.save_dir / ADDED, writer.save_dir / PSEUDO_COLOR)
    for _, reason in summary.skipped:
        logger.error("skipped: %s", reason)
    return summary


# ------------------------------------------------------------------------------------------------
# videos
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoSettings:
    """How to predict a video: ``smoothing`` (the weight of the past, 0 = off) and ``flow``
    (:mod:`paddleseg.deploy.smoothing`), ``max_frames`` (stop after that many), ``save_labels`` (label
    PNGs and the JSON report, which carries the flicker), ``batch_size`` (frames per model run)."""
    smoothing: float = 0.0
    flow: bool = False
    max_frames: Optional[int] = None
    save_labels: bool = False
    batch_size: int = 1


@dataclass
class VideoSummary(Summary):
    frames_read: int = 0
    overlay_frames: int = 0  # in the MP4: one more than ``done`` when a stop came between a frame's outputs
    flicker: Optional[float] = None
    overlay: Optional[Path] = None
    report: Optional[Path] = None


def read_video(source, max_frames: Optional[int]):
    """The stage reading ``source``'s frames (a :class:`paddleseg.deploy.video.VideoSource`), at most
    ``max_frames``."""
    def read(_: Iterator) -> Iterator[Frame]:
        for count, (index, image) in enumerate(source.frames(), 1):
            yield Frame(Path(source.name), Path(frame_name(index)), image, index=index)
            if max_frames is not None and count >= max_frames:
                return

    return read


def preprocess_video(preprocess: Callable[[np.ndarray], np.ndarray], backend):
    """The stage preprocessing each frame; a frame size the backend cannot take is an error (every
    frame has it)."""
    def refuse(frame: Frame, problem: str) -> None:
        raise DeployError(f"--video_path {frame.source}: {problem}")

    return _preprocess_stage(preprocess, backend, refuse)


def flow_stage(frames: Iterator[Frame]) -> Iterator[Frame]:
    """The stage giving each frame its optical flow to the previous one (:mod:`paddleseg.deploy.flicker`)."""
    flows, previous = FlowEstimator(), None
    for frame in frames:
        start = time.perf_counter()
        frame.flow = flows.flow(previous, frame.image) if previous is not None else None
        previous = frame.image
        frame.read_seconds += time.perf_counter() - start
        yield frame


def label_video(postprocess: Postprocess, output_op: Optional[str], settings: VideoSettings,
                flicker: Optional[FlickerMeter]):
    """The stage giving each frame its labels, after temporal smoothing when asked, and counting the
    flicker (frames come in order)."""
    smoother = TemporalSmoother(settings.smoothing, settings.flow) if settings.smoothing else None

    def label(batches: Iterator[Tuple[List[Frame], np.ndarray]]) -> Iterator[Frame]:
        for batch, output in batches:
            start = time.perf_counter()
            if smoother is None:
                labels = postprocess(output, batch)
            else:
                probabilities = to_probabilities(output, output_op)
                labels = [postprocess(smoother(p, frame.flow)[None], [frame])[0]
                          for p, frame in zip(probabilities, batch)]
            for frame, label_map in zip(batch, labels):
                frame.label = label_map
                if flicker is not None:
                    flicker.update(label_map, frame.flow)
                frame.flow = None
            seconds = (time.perf_counter() - start) / len(batch)
            for frame in batch:
                frame.label_seconds = seconds
                yield frame

    return label


def predict_video(stem: str, source, backend, preprocess: Callable[[np.ndarray], np.ndarray], save_dir: Path,
                  palette: np.ndarray, *, postprocess: Postprocess, output_op: Optional[str],
                  settings: VideoSettings = VideoSettings(), benchmark: Optional[Benchmark] = None,
                  progress: bool = False) -> VideoSummary:
    """Predict every frame of the opened ``source`` (:func:`paddleseg.deploy.video.open_source`) into
    ``save_dir`` (the outputs of :class:`paddleseg.deploy.outputs.VideoOutputWriter`, named after
    ``stem``). ``output_op`` says what the backend's output is (deploy.yaml's; scores are needed for
    smoothing). A truncated file or skipped frames are in ``summary.skipped`` (exit 3); the frames read
    are written in every case, the MP4 whole (module docstring)."""
    if settings.smoothing:
        check_scores(output_op)
    measure = settings.save_labels or settings.flow  # the flow is computed anyway with --flow
    flicker = FlickerMeter() if measure else None
    summary = VideoSummary()
    width, height = source.size
    total = min(filter(None, (source.claimed, settings.max_frames)), default=None)
    logger.info("Predicting %s (%dx%d, %.3g frames/s%s) into %s", source.name, width, height, source.fps,
                f", {source.claimed} frames" if source.claimed else "", save_dir)
    stages = [read_video(source, settings.max_frames), preprocess_video(preprocess, backend),
              *([flow_stage] if measure else []), model_stage(backend, settings.batch_size, benchmark),
              label_video(postprocess, output_op, settings, flicker)]
    writer = VideoOutputWriter(save_dir, stem, palette, source.fps, source.size, save_labels=settings.save_labels)
    complete = False
    try:  # the writer is left first: the MP4 is finished before the threads are waited for
        with Stages([], stages) as frames, writer, tqdm(total=total, desc=stem, unit="frame",
                                                         disable=not progress) as bar:
            _write_each(frames, lambda f: writer.write(f.index, f.image, f.label), summary, settings.batch_size, bar)
        source.check_complete(stopped_early=settings.max_frames is not None and summary.done >= settings.max_frames)
        complete = True
    finally:
        summary.frames_read = source.read
        summary.skipped = [(Path(what), reason) for what, reason in source.problems]
        summary.flicker = flicker.mean if flicker is not None else None
        summary.overlay_frames = writer.frames
        summary.overlay = writer.names.overlay if writer.frames else None
        if settings.save_labels and summary.done:
            summary.report = writer.write_report(video_report(source, summary, settings, complete))
        _log_video(source, summary, writer.names.labels if settings.save_labels else None)
    return summary


def video_report(source, summary: VideoSummary, settings: VideoSettings, complete: bool) -> Dict:
    """The content of ``<stem>.json``."""
    rate = summary.end_to_end_rate()
    return {"input": source.name, "frames": summary.overlay_frames, "frames_read": summary.frames_read,
            "frames_claimed": source.claimed, "complete": complete and not summary.skipped,
            "width": source.size[0], "height": source.size[1], "input_fps": source.input_fps,
            "output_fps": source.fps, "processing_fps": round(rate, 3) if rate else None,
            "temporal_smoothing": settings.smoothing, "flow": settings.flow,
            "flicker": round(summary.flicker, 6) if summary.flicker is not None else None,
            "flicker_is": "mean fraction of pixels whose label differs from the previous frame's labels carried "
                          "to this frame by dense optical flow (DIS) of the input frames",
            "problems": [reason for _, reason in summary.skipped]}


def _log_video(source, summary: VideoSummary, labels: Optional[Path]) -> None:
    rate = summary.end_to_end_rate()
    logger.info("Predicted %d frame(s) of %s%s%s", summary.done, source.name,
                f" at {rate:.1f} frames/s" if rate else "",
                f"; flicker {100 * summary.flicker:.2f}% of pixels per frame" if summary.flicker is not None else "")
    if summary.overlay is not None:
        logger.info("Overlay: %s%s", summary.overlay, f" (labels: {labels}/)" if labels is not None else "")
    for _, reason in summary.skipped:
        logger.error("%s", reason)
