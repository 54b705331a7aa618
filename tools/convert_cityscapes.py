"""Write ``gtFine/*/*/*_gtFine_labelTrainIds.png`` from the official ``*_gtFine_polygons.json`` (or
``*_gtFine_labelIds.png``) with cityscapesscripts' label table. Skips up-to-date files unless --force.

    python tools/convert_cityscapes.py data/cityscapes
"""
import sys
from typing import Optional, Sequence

from paddleseg.datasets.cityscapes_convert import convert_cityscapes
from paddleseg.utils.cli import ArgumentParser, add_common_arguments, run


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("dataset_root", help="folder holding gtFine/ (and leftImg8bit/)")
    parser.add_argument("--force", action="store_true", help="rewrite files that are up to date")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    written, skipped = convert_cityscapes(args.dataset_root, args.force, args.workers)
    print(f"wrote {written} train-id images, {skipped} already up to date")


if __name__ == "__main__":
    sys.exit(run(main))
