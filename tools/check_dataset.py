"""Check a whole data set once, and (for your own images and masks) diagnose, convert and configure it.

    python tools/check_dataset.py --config configs/quickstart/espnetv2_synthetic.yml
    python tools/check_dataset.py --cityscapes data/cityscapes --modes train val

    python tools/check_dataset.py --images data/mine/images --labels data/mine/masks
    python tools/check_dataset.py --images data/mine/images --labels data/mine/masks --json report.json \
        --report output/data_report --convert data/mine_ids --write_config configs/mine.yml
    python tools/check_dataset.py --voc data/VOCdevkit/VOC2012 --convert data/voc_ids --write_config configs/voc.yml

--config / --cityscapes: every image readable, label sizes and values in range (exit 2 naming the files).

--images/--labels (or --voc): every pair read once, in parallel; printed: the encoding of the masks
(class ids, binary 0/255, RGB colours, palette PNGs, or mixed), the classes with their pixels and class
weights (ESPNet's 1/ln(1.10+p) and median frequency), and the findings (missing_label, missing_image,
size_mismatch, out_of_range, unreadable, lossy_label, sixteen_bit, multi_channel, binary_0_255,
scaled_ids, rgb_colours, palette_mismatch, empty_class, duplicate_image), each naming its files. Exit 2 (one
``error:`` line) when a finding would break or silently spoil training, 0 otherwise.

Pairing: IMAGES/<sub>/<stem>.<ext> goes with LABELS/<sub>/<stem>.<ext>, or with the stem plus _mask,
_label, _gt or _gtFine_labelTrainIds (an image stem's _leftImg8bit is dropped first); extensions may differ.

--convert OUT_DIR writes OUT_DIR/labels/*.png (8-bit class ids: 0/255 -> 0/1, colours -> ids by the
matched or --palette palette, palette PNGs -> their indices, JPEG masks snapped to the nearest valid
value), OUT_DIR/images/* (copies), train.txt and val.txt (--val_fraction, --seed) and classes.txt, all
at once; the inputs are never written. Exit 3 when pairs that cannot be converted were left out.
--write_config FILE then writes a config that ``python train.py --config FILE`` trains directly.
"""
import sys
from typing import Optional, Sequence

from prettytable import PrettyTable

from paddleseg.datasets.doctor.checkup import add_conversion_arguments, class_count
from paddleseg.utils.cli import ArgumentParser, add_common_arguments, run


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="check the train/val/test datasets of this config")
    source.add_argument("--cityscapes", help="check this Cityscapes folder")
    source.add_argument("--images", help="your images (with --labels: diagnose, convert, configure)")
    source.add_argument("--voc", metavar="ROOT", help="a Pascal VOC folder (JPEGImages, SegmentationClass, ImageSets)")
    parser.add_argument("--labels", help="your masks, paired with --images by name")
    parser.add_argument("--modes", nargs="+", default=["train", "val"], help="splits for --cityscapes")
    parser.add_argument("--num_classes", type=class_count, help="classes of the set (default: inferred)")
    parser.add_argument("--palette", metavar="FILE", help="colour -> class table: one 'R G B name' line per class")
    parser.add_argument("--json", metavar="FILE", help="write the diagnosis as JSON")
    parser.add_argument("--report", metavar="DIR", help="write a self-contained HTML report to DIR/index.html")
    parser.add_argument("--convert", metavar="OUT_DIR", help="write the set as class-id PNGs with file lists")
    parser.add_argument("--write_config", metavar="FILE", help="with --convert: a training config for it")
    add_conversion_arguments(parser)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    doctor = bool(args.images or args.voc)
    if args.images and not args.labels:
        parser.error("--images needs --labels (the folder of masks)")
    if args.labels and not args.images:
        parser.error("--labels needs --images")
    doctor_only = [f for f, v in (("--num_classes", args.num_classes), ("--palette", args.palette),
                                  ("--json", args.json), ("--report", args.report), ("--convert", args.convert),
                                  ("--write_config", args.write_config)) if v is not None]
    if doctor_only and not doctor:
        parser.error(f"{doctor_only[0]} goes with --images/--labels or --voc")
    if args.write_config and not args.convert:
        parser.error("--write_config needs --convert OUT_DIR (the config trains on the converted set)")
    return args


def check_config_or_cityscapes(args) -> int:
    from paddleseg.cvlibs.config import Config
    from paddleseg.datasets.cityscapes import Cityscapes
    from paddleseg.errors import DatasetError, UserError

    if args.config:
        cfg = Config(args.config)
        keys = [k for k in ("train_dataset", "val_dataset", "test_dataset") if cfg.dic.get(k)]
        datasets = {}
        for k in keys:
            try:
                datasets[k] = getattr(cfg, k)
            except DatasetError as e:
                datasets[k] = e
    else:
        datasets = {}
        for mode in args.modes:
            try:
                datasets[mode] = Cityscapes(args.cityscapes, [], mode)
            except DatasetError as e:
                datasets[mode] = e

    table = PrettyTable(["dataset", "samples", "problems"])
    problems = []
    for name, ds in datasets.items():
        if isinstance(ds, UserError):
            table.add_row([name, "-", "structure: see below"])
            problems.append(f"{name}: {ds}")
            continue
        found = ds.check_contents(workers=args.workers, raise_error=False)
        table.add_row([name, len(ds), len(found)])
        problems.extend(f"{name}: {p}" for p in found)
    print(table)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 2
    print("all samples are valid")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.config or args.cityscapes:
        return check_config_or_cityscapes(args)
    from paddleseg.datasets.doctor.checkup import CheckupRequest, run_checkup

    return run_checkup(CheckupRequest(
        images=args.images, labels=args.labels, voc=args.voc, num_classes=args.num_classes,
        ignore_index=args.ignore_index, palette=args.palette, json_file=args.json, report=args.report,
        convert=args.convert, write_config=args.write_config, val_fraction=args.val_fraction, seed=args.seed,
        workers=args.workers, progress=not args.no_progress))


if __name__ == "__main__":
    sys.exit(run(main))
