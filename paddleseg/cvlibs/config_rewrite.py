"""Rewriting a YAML config file in place without touching the rest of it: setting the ``weight:`` of its
``CrossEntropyLoss`` entries (``compute_classweight.py --write-config``).

A YAML library would drop the comments, the key order and the layout, so the file is edited line by
line; the result is parsed back and compared with the original before it replaces the file atomically.

    check_config_writable("configs/quickstart/espnetv2_synthetic.yml")  # before any slow work
    write_weights_to_config("configs/quickstart/espnetv2_synthetic.yml", weights)
"""
import os
import re
from pathlib import Path
from typing import List, Sequence, Union

import yaml

from paddleseg.errors import ConfigError
from paddleseg.utils import yaml_io
from paddleseg.utils.atomic import atomic_write_text
from paddleseg.utils.regular_file import read_text

_TYPE_LINE = re.compile(r"^(?P<indent>\s*(?:-\s+)?)type:\s*CrossEntropyLoss\s*(#.*)?$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _ends_mapping(line: str, column: int) -> bool:
    """A non-blank line that is outside the mapping whose keys start at ``column``."""
    return bool(line.strip()) and (_indent(line) < column or
                                   (_indent(line) == column and line.lstrip().startswith("- ")))


def _weight_block(lines: List[str], start: int, column: int) -> range:
    """Line numbers of the ``weight:`` entry (with a block list below it) of the mapping from ``start``."""
    for j in range(start, len(lines)):
        if _ends_mapping(lines[j], column):
            break
        if _indent(lines[j]) == column and lines[j].lstrip().startswith("weight:"):
            k = j + 1
            while k < len(lines) and lines[k].strip() and (
                    _indent(lines[k]) > column or
                    (_indent(lines[k]) == column and lines[k].lstrip().startswith("- "))):
                k += 1
            return range(j, k)
    return range(0)


def check_config_writable(config_path: Union[str, Path]) -> None:
    """Fail before the (slow) counting if :func:`write_weights_to_config` could not replace the file:
    it writes a temporary file beside the file a symlink points to, then renames it."""
    target = Path(os.path.realpath(config_path))
    if not target.is_file():
        raise ConfigError(f"{config_path}: not a file")
    for needed in (target, target.parent):
        if not os.access(needed, os.W_OK):
            raise ConfigError(f"{config_path}: cannot write the weights into it ({needed} is not writable)")


def write_weights_to_config(config_path: Union[str, Path], weights: Sequence[float], decimals: int = 4) -> int:
    """Set ``weight:`` of every ``CrossEntropyLoss`` under ``loss.types`` in the file; returns how many.

    Only the weight lines change (a ``weight:`` key is added after ``type: CrossEntropyLoss`` when absent);
    the result is parsed back and compared with the original before it replaces the file atomically
    (:func:`~paddleseg.utils.atomic.atomic_write_text`: the file keeps its mode, a symlink stays a link
    and its target is rewritten). On any error the file is unchanged."""
    path = Path(config_path)
    try:
        text = read_text(path, yaml_io.MAX_BYTES)
        original = yaml_io.load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}{yaml_io.position(e)}: cannot read the config: {yaml_io.problem(e)}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config: {e}") from e
    values = [round(float(w), decimals) for w in weights]
    flow = "[" + ", ".join(f"{v:.{decimals}f}" for v in values) + "]"
    lines = text.splitlines(keepends=True)
    out: List[str] = []
    count, i = 0, 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        match = _TYPE_LINE.match(line.rstrip("\n"))
        if not match:
            continue
        count += 1
        column = len(match.group("indent"))
        if not line.endswith("\n"):
            out[-1] = line + "\n"
        block = _weight_block(lines, i, column)
        weight_line = " " * column + f"weight: {flow}\n"
        if block:
            out.extend(lines[i:block[0]])
            out.append(weight_line)
            i = block[-1] + 1
        else:
            out.append(weight_line)
    if not count:
        raise ConfigError(f"{path}: no 'type: CrossEntropyLoss' entry in this file (loss.types); add one, or "
                          f"run on the file that defines the loss (it may come from a _base_ file)")
    new_text = "".join(out)
    check_unchanged_but_weights(path, original, yaml_io.load(new_text), values)
    try:
        atomic_write_text(path, new_text)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write the config ({e.strerror or e}); the file is unchanged") from e
    return count


def check_unchanged_but_weights(path: Path, old, new, values: List[float]) -> None:
    def strip(cfg):
        cfg = yaml.safe_load(yaml.safe_dump(cfg))
        for item in (cfg.get("loss") or {}).get("types") or []:
            if isinstance(item, dict) and item.get("type") == "CrossEntropyLoss":
                item.pop("weight", None)
        return cfg

    types = (new.get("loss") or {}).get("types") or []
    written = [t.get("weight") for t in types if isinstance(t, dict) and t.get("type") == "CrossEntropyLoss"]
    if strip(old) != strip(new) or not written or any(w != values for w in written):
        raise ConfigError(f"{path}: could not rewrite the CrossEntropyLoss weight safely (unusual layout); "
                          f"the file is unchanged. Set loss.types[..].weight by hand to {values}")
