"""The data-set doctor's procedures behind ``tools/check_dataset.py`` and ``tools/convert_labelme.py``.

    code = run_checkup(CheckupRequest(images="data/img", labels="data/masks", convert="data/ids",
                                      write_config="configs/mine.yml"))
    code = run_labelme(LabelmeRequest(json_dir="data/labelme", out="data/ids"))

Everything the user named is checked before anything is read in bulk or written: the folders, the
palette file, and that the outputs may be written (a conversion folder new or empty and outside the
inputs, a config file new, a report folder new, empty or an earlier report). Then every pair is read
once, in worker processes, the findings are printed (and written to ``--json`` / ``--report``), and
the set is converted when asked.

Exit codes: 0 no finding would break or spoil training (or the conversion wrote every pair); 2 one
``error:`` line summing up the findings that would (without ``--convert``), or any user error, with
nothing written; 3 the conversion finished but left out pairs it could not convert (named on stderr).
"""
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from prettytable import PrettyTable

from paddleseg.datasets.doctor.config_writer import check_config_target, write_config
from paddleseg.datasets.doctor.convert import Conversion, FileLabel, Sample, check_output_folder, write_converted_set
from paddleseg.datasets.doctor.diagnosis import ERROR, LISTED_FILES, Diagnosis, Options, diagnose
from paddleseg.datasets.doctor.labelme import (
    LabelmeLabel,
    class_names,
    embedded_extension,
    find_annotations,
    image_size,
    label_ids,
    label_map_text,
    read_label_map,
    read_labelme,
)
from paddleseg.datasets.doctor.pairing import find_pairs
from paddleseg.datasets.doctor.palettes import read_palette_file
from paddleseg.datasets.doctor.report import check_report_folder, write_report
from paddleseg.datasets.doctor.scan import scan_pairs
from paddleseg.datasets.doctor.voc import voc_pairing
from paddleseg.datasets.parallel import parallel_map
from paddleseg.errors import DatasetError, UserError
from paddleseg.utils.atomic import atomic_write_text
from paddleseg.utils.cli import EXIT_OK, EXIT_SKIPPED, non_negative_int, number_type, positive_int
from paddleseg.utils.output_targets import check_file_target

# argument types of both tools (paddleseg.utils.cli's helper: an error names the flag and the value)
fraction = number_type(float, "a number from 0 up to (not including) 1", lambda v: 0 <= v < 1)
label_value = number_type(int, "an integer 0..255", lambda v: 0 <= v <= 255)
class_count = number_type(int, "an integer 1..255", lambda v: 1 <= v <= 255)


@dataclass
class CheckupRequest:
    """The options of ``tools/check_dataset.py`` for a folder pair (``images``, ``labels``) or a VOC tree."""

    images: Optional[str] = None
    labels: Optional[str] = None
    voc: Optional[str] = None
    num_classes: Optional[int] = None
    ignore_index: int = 255
    palette: Optional[str] = None
    json_file: Optional[str] = None
    report: Optional[str] = None
    convert: Optional[str] = None
    write_config: Optional[str] = None
    val_fraction: float = 0.2
    seed: int = 0
    workers: Optional[int] = None
    progress: bool = True


@dataclass
class LabelmeRequest:
    """The options of ``tools/convert_labelme.py``."""

    json_dir: str
    out: str
    label_map: Optional[str] = None
    write_config: Optional[str] = None
    val_fraction: float = 0.2
    seed: int = 0
    ignore_index: int = 255
    workers: Optional[int] = None
    progress: bool = True


def add_conversion_arguments(parser) -> None:
    """The options both tools share: the ignore index, the split, the workers, progress bars."""
    parser.add_argument("--ignore_index", type=label_value, default=255, help="the label value of ignored pixels")
    parser.add_argument("--val_fraction", type=fraction, default=0.2, help="share of the pairs for val.txt")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the train/val split")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes (default: CPU count, at most 8)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")


# ------------------------------------------------------------------------------------------------
# checks of what will be written
# ------------------------------------------------------------------------------------------------
def _inside(path: str, folders: Sequence[str]) -> Optional[str]:
    target = Path(os.path.realpath(path))
    for folder in folders:
        src = Path(os.path.realpath(folder))
        if target == src or src in target.parents:
            return folder
    return None


def check_outputs(inputs: Sequence[str], convert: Optional[str] = None, config: Optional[str] = None,
                  report: Optional[str] = None, json_file: Optional[str] = None) -> None:
    """Every output may be written, none inside the inputs; raises UserError before anything is written."""
    for path, flag in ((report, "--report"), (json_file, "--json"), (config, "--write_config")):
        if path is not None and _inside(path, inputs):
            raise UserError(f"{flag} {path}: is inside the input folder {_inside(path, inputs)}; the inputs are never "
                            f"written to")
    if convert is not None:
        check_output_folder(convert, inputs)
        if report is not None and os.path.realpath(report) == os.path.realpath(convert):
            raise UserError(f"--report {report}: is the --convert folder; give another folder")
    if config is not None:
        check_config_target(config)
    if report is not None:
        check_report_folder(report)
    if json_file is not None:
        check_file_target(json_file, "--json")


# ------------------------------------------------------------------------------------------------
# printing
# ------------------------------------------------------------------------------------------------
def print_diagnosis(d: Diagnosis, out: TextIO = sys.stdout) -> None:
    summary = PrettyTable(["pairs", "encoding", "classes", "ignore index", "palette"])
    summary.add_row([len(d.scans), d.encoding, d.num_classes, d.ignore_index, d.palette.name if d.palette else "-"])
    print(summary, file=out)
    if d.num_classes:
        classes = PrettyTable(["id", "name", "pixels", "share", "ESPNet weight", "median-freq weight"])
        total = max(int(d.class_pixels.sum()), 1)
        espnet = d.class_weights["espnet"] or [None] * d.num_classes
        median = d.class_weights["median_frequency"] or [None] * d.num_classes
        for i, name in enumerate(d.names()):
            classes.add_row([i, name, f"{int(d.class_pixels[i]):,}", f"{100 * d.class_pixels[i] / total:.2f}%",
                             "-" if espnet[i] is None else f"{espnet[i]:.4f}",
                             "-" if median[i] is None else f"{median[i]:.4f}"])
        classes.align = "r"
        classes.align["name"] = "l"
        print(classes, file=out)
    if not d.findings:
        print("no findings: the set can be trained on as it is", file=out)
        return
    table = PrettyTable(["kind", "severity", "files", "fixed by --convert", "detail"])
    table.align = "l"
    table.max_width["detail"] = 70
    for f in d.findings:
        table.add_row([f.kind, f.severity, len(f.files), "yes" if f.fixed_by_convert else "no", f.detail])
    print(table, file=out)
    for f in d.findings:
        print(f"{f.kind}: {f.named_files()}", file=out)


def findings_error(d: Diagnosis) -> str:
    """The one error line for findings that would break or spoil training."""
    errors = [f for f in d.findings if f.severity == ERROR]
    listed = "; ".join(f"{f.kind} ({len(f.files)} file(s), e.g. {f.files[0]})" for f in errors)
    fixed = [f.kind for f in errors if f.fixed_by_convert]
    hint = f"; --convert OUT_DIR fixes {', '.join(fixed)}" if fixed else ""
    return f"{len(errors)} finding(s) would break or spoil training: {listed}{hint} (details above)"


def _write_json(path: str, content: Dict) -> None:
    try:
        atomic_write_text(path, json.dumps(content, indent=2) + "\n")
    except OSError as e:
        raise UserError(f"--json {path}: could not be written ({e.strerror or e})") from e


def _report_skipped(skipped: List[str], err: TextIO) -> int:
    """Name what a conversion left out (on ``err``); the exit code."""
    if not skipped:
        return EXIT_OK
    shown = "; ".join(skipped[:LISTED_FILES])
    more = f" and {len(skipped) - LISTED_FILES} more" if len(skipped) > LISTED_FILES else ""
    print(f"skipped {len(skipped)} input(s) that could not be converted: {shown}{more}", file=err)
    return EXIT_SKIPPED


def _print_conversion(c: Conversion, out: TextIO) -> None:
    snapped = (f"; {c.snapped_pixels:,} pixels of lossy labels snapped to the nearest valid value"
               if c.snapped_pixels else "")
    print(f"{c.out}: {c.train} training and {c.val} validation pairs, {c.num_classes} classes, images copied{snapped}",
          file=out)


# ------------------------------------------------------------------------------------------------
# the procedures
# ------------------------------------------------------------------------------------------------
def class_colours(d: Diagnosis) -> Optional[List[Tuple[int, int, int]]]:
    """The colour of each class in the masks the diagnosis read them by (a matched or given palette),
    or None: ids, 0/255 masks, or a palette without a colour for some class."""
    if d.palette is None or not d.class_names or d.palette.num_classes != d.num_classes:
        return None
    colours = [d.palette.colour_of(i) for i in range(d.num_classes)]
    return None if any(c is None for c in colours) else [tuple(int(v) for v in c) for c in colours]


def samples_of(d: Diagnosis, images_root: str, splits: Dict[str, str]) -> List[Sample]:
    """The pairs that can be converted, named by their image's path under ``images_root``."""
    samples = []
    for i in d.convertible:
        s = d.scans[i]
        rel = os.path.relpath(s.image, images_root)
        name = os.path.splitext(rel)[0].replace(os.sep, "/")
        samples.append(Sample(name, s.image, FileLabel(s.label, d.maps[i]), split=splits.get(s.image),
                              group=s.image_hash))
    return samples


def run_checkup(req: CheckupRequest, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Check (and convert) a data set (module docstring); returns the exit code."""
    palette = read_palette_file(req.palette, req.ignore_index) if req.palette else None
    splits: Dict[str, str] = {}
    if req.voc:
        pairing, splits, labels_dir = voc_pairing(req.voc)
        inputs, images_root = [req.voc], str(Path(labels_dir).parent / "JPEGImages")
    else:
        pairing = find_pairs(req.images, req.labels)
        inputs, labels_dir, images_root = [req.images, req.labels], req.labels, req.images
    check_outputs(inputs, req.convert, req.write_config, req.report, req.json_file)
    scans = scan_pairs(pairing.pairs, req.workers, req.progress)
    d = diagnose(scans, pairing, Options(req.num_classes, req.ignore_index, palette, str(labels_dir)))
    print_diagnosis(d, out)
    if req.json_file:
        _write_json(req.json_file, d.to_json())
    if req.report:
        details = {"voc": req.voc} if req.voc else {"images": req.images, "labels": req.labels}
        print(f"report: {write_report(req.report, d, details)}", file=out)
    if not req.convert:
        if d.has_errors:
            raise DatasetError(findings_error(d))
        return EXIT_OK
    if not d.num_classes:
        raise DatasetError("no label could be read, so there are no classes to convert to (see the findings)")
    samples = samples_of(d, images_root, splits)
    conversion = write_converted_set(req.convert, samples, d.num_classes, d.ignore_index, d.class_names,
                                     req.val_fraction, req.seed, inputs, workers=req.workers, progress=req.progress,
                                     palette=class_colours(d))
    _print_conversion(conversion, out)
    if req.write_config:
        print(f"config: {write_config(req.write_config, conversion)}", file=out)
    skipped = [f"{d.scans[i].label} ({why})" for i, why in sorted(d.skipped.items())]
    skipped += [f"{path} (no label)" for path in d.missing_label]
    return _report_skipped(skipped, err)


def _inspect_annotation(path: str) -> Tuple[Optional[List[str]], Optional[str], Optional[str]]:
    """(its labels, its image file or None when embedded, None) or (None, None, the problem)."""
    try:
        a = read_labelme(path)
        size = image_size(a)
    except DatasetError as e:
        return None, None, str(e)
    if size != (a.height, a.width):
        return None, None, (f"{path}: imageHeight/imageWidth {a.width}x{a.height} differ from the image's "
                            f"{size[1]}x{size[0]}")
    image = a.image_path if a.image_path and Path(a.image_path).is_file() else None
    return [s.label for s in a.shapes], image, None


def run_labelme(req: LabelmeRequest, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Convert a folder of labelme annotations (module docstring of :mod:`.labelme`); returns the exit code."""
    files = find_annotations(req.json_dir)
    existing = read_label_map(req.label_map) if req.label_map and Path(req.label_map).exists() else None
    check_outputs([req.json_dir], req.out, req.write_config)
    if req.label_map:
        check_file_target(req.label_map, "--label_map")
        if _inside(req.label_map, [req.json_dir]):
            raise UserError(f"--label_map {req.label_map}: is inside --json_dir {req.json_dir}, which is never "
                            f"written to")
    found = parallel_map(_inspect_annotation, [str(f) for f in files], req.workers, "reading annotations", req.progress)
    problems = [(str(f), problem) for f, (_, _, problem) in zip(files, found) if problem]
    ids, added = label_ids((name for labels, _, _ in found if labels for name in labels), existing)
    if added and existing is not None:
        print(f"labels added to the label map: {', '.join(f'{n} = {ids[n]}' for n in added)}", file=out)
    samples = []
    for path, (labels, image, problem) in zip(files, found):
        if problem:
            continue
        name = path.relative_to(req.json_dir).with_suffix("").as_posix()
        label = LabelmeLabel(str(path), ids, req.ignore_index)
        if image is not None:
            samples.append(Sample(name, image, label))
        else:
            data = read_labelme(path).image_data
            samples.append(Sample(name, None, label, image_bytes=data, image_ext=embedded_extension(data)))
    conversion = write_converted_set(req.out, samples, len(ids), req.ignore_index, class_names(ids), req.val_fraction,
                                     req.seed, [req.json_dir], {"label_map.json": label_map_text(ids)}, req.workers,
                                     req.progress)
    _print_conversion(conversion, out)
    if req.label_map and (existing is None or added):
        atomic_write_text(req.label_map, label_map_text(ids))
        print(f"label map: {req.label_map}", file=out)
    if req.write_config:
        print(f"config: {write_config(req.write_config, conversion)}", file=out)
    return _report_skipped([problem for _, problem in problems], err)
