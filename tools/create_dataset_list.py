"""Write file lists (``image label`` lines) for the ``Dataset`` type from an image and a label folder.

For masks that are not class ids yet (0/255 binary masks, colour masks, palette or JPEG masks), or to
pair by name automatically, use ``tools/check_dataset.py --images DIR --labels DIR --convert OUT_DIR``,
which writes the lists too.

    python tools/create_dataset_list.py data/mydata --image-dir images --label-dir labels \
        --image-suffix .jpg --label-suffix .png --split 0.8 0.2 0.0
"""
import sys
from pathlib import Path
from typing import Optional, Sequence

from paddleseg.datasets.file_list import find_pairs, split_pairs, write_file_list
from paddleseg.utils.cli import ArgumentParser, add_common_arguments, run


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("dataset_root")
    parser.add_argument("--image-dir", default="images", help="image folder, relative to dataset_root")
    parser.add_argument("--label-dir", default="labels", help="label folder ('' for a test list without labels)")
    parser.add_argument("--image-suffix", default=".jpg")
    parser.add_argument("--label-suffix", default=".png")
    parser.add_argument("--pattern", default="**/*", help="glob before the suffix, e.g. '*/*' (default: any depth)")
    parser.add_argument("--split", nargs=3, type=float, default=[1.0, 0.0, 0.0], metavar=("TRAIN", "VAL", "TEST"),
                        help="fractions for train.txt, val.txt, test.txt (shuffled with --seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--separator", default=" ")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    pairs = find_pairs(args.dataset_root, args.image_dir, args.label_dir or None, args.image_suffix,
                       args.label_suffix, args.pattern)
    for name, part in zip(("train", "val", "test"), split_pairs(pairs, tuple(args.split), args.seed)):
        if part:
            path = Path(args.dataset_root) / f"{name}.txt"
            write_file_list(path, part, args.separator)
            print(f"{path}: {len(part)} samples")


if __name__ == "__main__":
    sys.exit(run(main))
