"""Images per second of the reference's training pipeline (decode + ResizeStepScaling, RandomPaddingCrop
1024x512, RandomHorizontalFlip, RandomDistort, Normalize) on 2048x1024 PNG pairs, in one process and with
N worker processes; optionally the same for upstream PaddleSeg 2.8's transforms, run from another
virtualenv (it has the same package name, so never install it into the project's environment).

    python tools/benchmark_data.py --workers 2 --upstream-python /tmp/upstream_venv/bin/python

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


def ours() -> Callable[[Pair, int], object]:
    import numpy as np

    from paddleseg.cvlibs import builder, manager
    from paddleseg.transforms import Compose, read_image, read_label

    config = [
        {"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 2.0, "scale_step_size": 0.25},
        {"type": "RandomPaddingCrop", "crop_size": [1024, 512]},
        {"type": "RandomHorizontalFlip"},
        {"type": "RandomDistort", "brightness_range": 0.4, "contrast_range": 0.4, "saturation_range": 0.4},
        {"type": "Normalize"},
    ]
    compose = Compose([builder.build_component(c, manager.TRANSFORMS) for c in config])

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
    parser.add_argument("--harness", choices=sorted(PIPELINES), help=argparse.SUPPRESS)
    parser.add_argument("--pairs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.harness:  # inside the other virtualenv: measure and print JSON only
        print(json.dumps(harness(args.harness, json.loads(args.pairs), args.count, args.workers)))
        return 0

    from prettytable import PrettyTable

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
