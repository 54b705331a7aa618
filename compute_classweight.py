"""Class weights of a training set, ``1 / ln(1.10 + p)`` (ESPNet), printed and optionally written into a
config's ``CrossEntropyLoss.weight``.

    python compute_classweight.py --config configs/quickstart/espnetv2_synthetic.yml --write-config
    python compute_classweight.py --cityscapes data/cityscapes
"""
import sys
from typing import Optional, Sequence

from prettytable import PrettyTable

from paddleseg.cvlibs.config import Config
from paddleseg.cvlibs.config_rewrite import check_config_writable, write_weights_to_config
from paddleseg.datasets.cityscapes import Cityscapes
from paddleseg.datasets.class_weights import compute_class_weights
from paddleseg.utils.cityscapes_labels import class_names
from paddleseg.utils.cli import ArgumentParser, add_common_arguments, run


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="use this config's train_dataset")
    source.add_argument("--cityscapes", help="use this Cityscapes folder's train split")
    parser.add_argument("--write-config", action="store_true", help="write the weights into --config")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.write_config and not args.config:
        parser.error("--write-config needs --config")
    if args.write_config:
        check_config_writable(args.config)
    dataset = Config(args.config).train_dataset if args.config else Cityscapes(args.cityscapes, [], "train")
    weights = compute_class_weights(dataset, args.workers)
    names = class_names(len(weights)) or [str(i) for i in range(len(weights))]
    table = PrettyTable(["class", "weight"])
    for name, w in zip(names, weights):
        table.add_row([name, f"{w:.4f}"])
    print(table)
    print("weight: [" + ", ".join(f"{w:.4f}" for w in weights) + "]")
    if args.write_config:
        count = write_weights_to_config(args.config, weights)
        print(f"{args.config}: wrote the weights into {count} CrossEntropyLoss entr{'y' if count == 1 else 'ies'}")


if __name__ == "__main__":
    sys.exit(run(main))
