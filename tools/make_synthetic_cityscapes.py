"""Write the synthetic Cityscapes (official layout, then converted to train ids): the quick start's data.

    python tools/make_synthetic_cityscapes.py --out data/synthetic_cityscapes
"""
import sys
from typing import Optional, Sequence

from paddleseg.datasets.synthetic import write_synthetic_cityscapes
from paddleseg.utils.cli import ArgumentParser, add_common_arguments, run


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/synthetic_cityscapes", help="output folder")
    parser.add_argument("--train", type=int, default=60, help="training images")
    parser.add_argument("--val", type=int, default=20, help="validation images")
    parser.add_argument("--test", type=int, default=0, help="test images")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    root = write_synthetic_cityscapes(args.out, args.train, args.val, args.test, args.width, args.height,
                                      args.seed, args.workers)
    print(f"wrote {args.train} train, {args.val} val, {args.test} test scenes of {args.width}x{args.height} "
          f"to {root}")


if __name__ == "__main__":
    sys.exit(run(main))
