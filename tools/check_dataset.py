"""Check a whole data set once: structure, then every file (readable, image and label sizes, label values).

    python tools/check_dataset.py --config configs/quickstart/espnetv2_synthetic.yml
    python tools/check_dataset.py --cityscapes data/cityscapes --modes train val
"""
import sys
from typing import Optional, Sequence

from prettytable import PrettyTable

from paddleseg.cvlibs.config import Config
from paddleseg.datasets.cityscapes import Cityscapes
from paddleseg.errors import DatasetError, UserError
from paddleseg.utils.cli import ArgumentParser, add_common_arguments, positive_int, run


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="check the train/val/test datasets of this config")
    source.add_argument("--cityscapes", help="check this Cityscapes folder")
    parser.add_argument("--modes", nargs="+", default=["train", "val"], help="splits for --cityscapes")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes (default: CPU count)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(run(main))
