"""Convert labelme annotations (one JSON file per image) to class-id PNGs, file lists and a config.

    python tools/convert_labelme.py --json_dir data/labelme --out data/labelme_ids \
        --label_map data/label_map.json --write_config configs/labelme.yml

Shapes (polygons, rectangles, circles, lines, points, masks) are drawn in file order as labelme draws
them; uncovered pixels are _background_ (id 0), the label __ignore__ marks ignored pixels. The label ->
id map is written to OUT/label_map.json, and to --label_map FILE: given again, FILE keeps its ids and
gains the new labels, so later batches get the same ids. The images are copied (or written from the
JSON's embedded imageData). OUT is written whole or not at all, like check_dataset.py --convert; exit 3
when annotations that could not be used were left out (each named).
"""
import sys
from typing import Optional, Sequence

from paddleseg.datasets.doctor.checkup import LabelmeRequest, add_conversion_arguments, run_labelme
from paddleseg.utils.cli import ArgumentParser, add_common_arguments, run


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--json_dir", required=True, help="folder of labelme .json files (any depth)")
    parser.add_argument("--out", required=True, metavar="OUT_DIR", help="new or empty folder for the converted set")
    parser.add_argument("--label_map", metavar="FILE", help="label -> id map (JSON) to reuse and extend")
    parser.add_argument("--write_config", metavar="FILE", help="a training config for the converted set")
    add_conversion_arguments(parser)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    return run_labelme(LabelmeRequest(args.json_dir, args.out, args.label_map, args.write_config, args.val_fraction,
                                      args.seed, args.ignore_index, args.workers, not args.no_progress))


if __name__ == "__main__":
    sys.exit(run(main))
