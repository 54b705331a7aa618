"""Images per second of the reference's training pipeline (decode + ResizeStepScaling, RandomPaddingCrop
1024x512, RandomHorizontalFlip, RandomDistort, Normalize) on 2048x1024 PNG pairs, in one process and with
N worker processes; optionally the same for upstream PaddleSeg 2.8's transforms, run from another
virtualenv (it has the same package name, so never install it into the project's environment).

    python tools/benchmark_data.py --workers 2 --upstream-python /tmp/upstream_venv/bin/python
    python tools/benchmark_data.py --epoch-starts --workers 2   # the wait at each epoch's start

``--epoch-starts`` measures what training waits for at the start of each of ``--epochs`` short epochs:
with a loader built per epoch (its worker processes started again every epoch, as before) and with
the run-long loader training uses now (workers started once, the next epoch prefetched). Each batch
is followed by a simulated training step of ``--step`` seconds.

This file is also the upstream harness: ``--harness upstream`` runs inside that virtualenv and prints
JSON, so it must not import this project at module level.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

Pair = Tuple[str, str]


REFERENCE_TRANSFORMS = [
    {"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 2.0, "scale_step_size": 0.25},
    {"type": "RandomPaddingCrop", "crop_size": [1024, 512]},
    {"type": "RandomHorizontalFlip"},
    {"type": "RandomDistort", "brightness_range": 0.4, "contrast_range": 0.4, "saturation_range": 0.4},
    {"type": "Normalize"},
]


def reference_transforms() -> list:
    from paddleseg.cvlibs import builder, manager

    return [builder.build_component(c, manager.TRANSFORMS) for c in REFERENCE_TRANSFORMS]


def ours() -> Callable[[Pair, int], object]:
    import numpy as np

    from paddleseg.transforms import Compose, read_image, read_label

    compose = Compose(reference_transforms())

    def load(pair: Pair, i: int):
        return compose(read_image(pair[0]), read_label(pair[1]), np.random.default_rng((0, 0, i)))

    return load


def upstream() -> Callable[[Pair, int], object]:
    import paddleseg.transforms as T

    compose = T.Compose([T.ResizeStepScaling(0.5, 2.0, 0.25), T.RandomPaddingCrop(crop_size=[1024, 512]),
                         T.RandomHorizontalFlip(), T.RandomDistort(brightness_range=0.4, contrast_range=0.4,
                                                                    saturation_range=0.4), T.Normalize()])

    def load(pair: Pair, i: int):
        return compose({"img": pair[0], "label": pair[1], "trans_info": [], "gt_fields": ["label"]})

    return load


PIPELINES = {"ours": ours, "upstream": upstream}
_LOAD = None


def _init(kind: str) -> None:
    global _LOAD
    _LOAD = PIPELINES[kind]()


def _one(job: Tuple[Pair, int]) -> None:
    _LOAD(*job)


def measure(kind: str, pairs: Sequence[Pair], count: int, workers: int) -> float:
    """Images per second over ``count`` loads (cycling through ``pairs``) in 1 process or a pool."""
    jobs = [(pairs[i % len(pairs)], i) for i in range(count)]
    if workers <= 1:
        _init(kind)
        _one(jobs[0])  # warm-up: imports, first allocations
        start = time.perf_counter()
        for job in jobs:
            _one(job)
        return count / (time.perf_counter() - start)
    pool = Pool(workers, initializer=_init, initargs=(kind,))
    try:
        pool.map(_one, jobs[:workers])
        start = time.perf_counter()
        pool.map(_one, jobs, chunksize=1)
        return count / (time.perf_counter() - start)
    finally:
        pool.close()  # not terminate(): paddle's signal handlers would print a dump per worker
        pool.join()


def harness(kind: str, pairs: List[Pair], count: int, workers: List[int]) -> Dict[str, float]:
    return {str(w): measure(kind, pairs, count, w) for w in workers}


def epoch_starts(root: Path, workers: int, epochs: int, batch_size: int, step: float,
                 run_long: bool) -> List[float]:
    """Seconds from asking for each epoch's first batch to having it, over ``epochs`` epochs of the
    training set under ``root``; a ``step``-second pause after every batch stands for the training step."""
    from paddleseg.datasets.cityscapes import Cityscapes
    from paddleseg.datasets.loader import EpochBatchSampler, build_dataloader, build_run_loader

    dataset = Cityscapes(str(root), reference_transforms(), "train")
    per_epoch = len(EpochBatchSampler(len(dataset), batch_size, True, True))
    run = iter(build_run_loader(dataset, batch_size, num_workers=workers)) if run_long else None
    waits = []
    for epoch in range(epochs):
        batches = run if run_long else iter(build_dataloader(dataset, batch_size, shuffle=True, drop_last=True,
                                                             num_workers=workers, epoch=epoch, num_replicas=1,
                                                             rank=0))
        for i in range(per_epoch):
            start = time.perf_counter()
            next(batches)
            if i == 0:
                waits.append(time.perf_counter() - start)
            time.sleep(step)
        if not run_long:
            del batches  # its workers stop here, as at the end of an epoch's loop
    return waits


def report_epoch_starts(root: Path, args) -> None:
    from prettytable import PrettyTable

    table = PrettyTable(["loader"] + [f"epoch {e + 1}, s" for e in range(args.epochs)])
    for run_long, name in ((False, "built per epoch (before)"), (True, "run-long (now)")):
        waits = epoch_starts(root, args.workers[-1], args.epochs, args.batch_size, args.step, run_long)
        table.add_row([name] + [f"{w:.2f}" for w in waits])
    print(f"wait for the first batch of each epoch: {args.workers[-1]} worker(s), batch {args.batch_size}, "
          f"{args.step:g} s simulated step, {args.images} distinct 2048x1024 PNG pairs")
    print(table)


def make_pairs(folder: Path, n: int) -> List[Pair]:
    from paddleseg.datasets.cityscapes import Cityscapes
    from paddleseg.datasets.synthetic import write_synthetic_cityscapes

    write_synthetic_cityscapes(folder, train=n, val=0, width=2048, height=1024, seed=0)
    return Cityscapes(str(folder), [], "train").file_list


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6, help="distinct 2048x1024 pairs to generate")
    parser.add_argument("--count", type=int, default=40, help="loads per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="process counts to measure")
    parser.add_argument("--data", help="use this Cityscapes-layout folder instead of generating one")
    parser.add_argument("--upstream-python", help="python of a virtualenv with paddleseg==2.8.0")
    parser.add_argument("--epoch-starts", action="store_true",
                        help="measure the wait for each epoch's first batch, loader per epoch against run-long")
    parser.add_argument("--epochs", type=int, default=3, help="with --epoch-starts: epochs to run")
    parser.add_argument("--batch-size", type=int, default=2, help="with --epoch-starts: images per batch")
    parser.add_argument("--step", type=float, default=0.5, help="with --epoch-starts: simulated step, seconds")
    parser.add_argument("--harness", choices=sorted(PIPELINES), help=argparse.SUPPRESS)
    parser.add_argument("--pairs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.harness:  # inside the other virtualenv: measure and print JSON only
        print(json.dumps(harness(args.harness, json.loads(args.pairs), args.count, args.workers)))
        return 0

    from prettytable import PrettyTable

    if args.epoch_starts:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(args.data) if args.data else Path(tmp) / "bench"
            if not args.data:
                make_pairs(root, args.images)
            report_epoch_starts(root, args)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        pairs = (make_pairs(Path(tmp) / "bench", args.images) if not args.data else
                 __import__("paddleseg.datasets.cityscapes", fromlist=["Cityscapes"]).Cityscapes(
                     args.data, [], "train").file_list[: args.images])
        results = {"ours": harness("ours", pairs, args.count, args.workers)}
        if args.upstream_python:
            cmd = [args.upstream_python, str(Path(__file__).resolve()), "--harness", "upstream", "--pairs",
                   json.dumps(pairs), "--count", str(args.count), "--workers", *map(str, args.workers)]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
            if done.returncode != 0:
                print(f"upstream run failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            else:
                results["upstream 2.8"] = json.loads(done.stdout.strip().splitlines()[-1])
    table = PrettyTable(["pipeline"] + [f"{w} process(es), img/s" for w in args.workers])
    for name, by_workers in results.items():
        table.add_row([name] + [f"{by_workers[str(w)]:.1f}" for w in args.workers])
    print(f"reference training pipeline, decode included, {len(pairs)} distinct 2048x1024 PNG pairs, "
          f"{args.count} loads per cell")
    print(table)
    if "upstream 2.8" in results:
        for w in args.workers:
            print(f"speed-up with {w} process(es): "
                  f"{results['ours'][str(w)] / results['upstream 2.8'][str(w)]:.2f}x")
    return 0


if __name__ == "__main__":
    if "--harness" in sys.argv:  # possibly upstream's interpreter: nothing of ours to import
        sys.exit(main())
    from paddleseg.utils.cli import run

    sys.exit(run(main))
