"""Parameters, multiply-accumulates and eval latency of ESPNetV2 per scale.

    python tools/analyze_model.py                      # scales 0.5 1.0 1.5 2.0 at 512x1024
    python tools/analyze_model.py --height 1024 --width 2048 --scales 2.0 --runs 3 --json out.json

CPU threads follow OMP_NUM_THREADS / paddle's default.
"""
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from prettytable import PrettyTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from paddleseg.models import ESPNetV2  # noqa: E402
from paddleseg.utils.cli import ArgumentParser, add_common_arguments, run  # noqa: E402
from paddleseg.utils.device import set_device  # noqa: E402
from paddleseg.utils.model_stats import count_macs, eval_latency  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--num_classes", type=int, default=19)
    parser.add_argument("--runs", type=int, default=3, help="timed eval passes per scale (0: no timing)")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    set_device(args.device)
    shape = (1, 3, args.height, args.width)
    table = PrettyTable(["scale", "params", "conv GMACs", f"eval median s ({args.height}x{args.width})"])
    rows = []
    for scale in args.scales:
        model = ESPNetV2(num_classes=args.num_classes, scale=scale)
        stats = count_macs(model, shape)
        latency = float(np.median(eval_latency(model, shape, runs=args.runs))) if args.runs else None
        rows.append({"scale": scale, "params": stats.params, "conv_macs": stats.conv_macs,
                     "input": list(shape), "eval_median_s": latency})
        table.add_row([scale, f"{stats.params:,}", f"{stats.conv_macs / 1e9:.3f}",
                       "-" if latency is None else f"{latency:.3f}"])
    print(table)
    print(json.dumps(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
