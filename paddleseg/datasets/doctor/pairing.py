"""Pairing images and masks of two folders by name.

An image ``IMAGES/<sub>/<stem>.<ext>`` is paired with the label ``LABELS/<sub>/<stem>.<ext>``, or with
``LABELS/<sub>/<stem><suffix>.<ext>`` for the usual suffixes ``_mask``, ``_label``, ``_gt`` and
``_gtFine_labelTrainIds`` (an image stem ending in ``_leftImg8bit`` loses it first, as in Cityscapes).
The relative sub-folder must be the same; the extensions may differ (``a.jpg`` with ``a.png``). The two
folders may be one: labels are then the files with a suffix. Hidden files and folders are skipped.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from paddleseg.errors import DatasetError

PathLike = Union[str, Path]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".jpg", ".jpeg")
LABEL_SUFFIXES = ("_gtFine_labelTrainIds", "_mask", "_label", "_gt")
IMAGE_SUFFIXES = ("_leftImg8bit",)


@dataclass
class Pairing:
    """Image and label paths (as given, under their folders): the pairs, images without a label and
    labels without an image."""

    pairs: List[Tuple[str, str]] = field(default_factory=list)
    missing_label: List[str] = field(default_factory=list)
    missing_image: List[str] = field(default_factory=list)


def _files(folder: Path, extensions: Tuple[str, ...], skip: Optional[Path] = None) -> List[Path]:
    found = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or p.suffix.lower() not in extensions:
            continue
        if skip is not None and (p.resolve() == skip or skip in p.resolve().parents):
            continue
        if p.is_file():
            found.append(p)
    return found


def _strip(stem: str, suffixes: Tuple[str, ...]) -> Optional[str]:
    for suffix in suffixes:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return None


def _key(rel: Path, stem: str) -> str:
    return (rel.parent / stem).as_posix()


def check_folder(folder: PathLike, flag: str) -> Path:
    path = Path(folder)
    if not path.exists():
        raise DatasetError(f"{flag} {folder}: folder not found")
    if not path.is_dir():
        raise DatasetError(f"{flag} {folder}: is not a folder")
    return path


def find_pairs(images_dir: PathLike, labels_dir: PathLike) -> Pairing:
    """Pair the files of the two folders (module docstring). DatasetError for a missing folder or one
    without images or labels."""
    images_root, labels_root = check_folder(images_dir, "--images"), check_folder(labels_dir, "--labels")
    same = images_root.resolve() == labels_root.resolve()
    nested_labels = not same and images_root.resolve() in labels_root.resolve().parents
    nested_images = not same and labels_root.resolve() in images_root.resolve().parents
    labels = _files(labels_root, LABEL_EXTENSIONS, images_root.resolve() if nested_images else None)
    if same:
        labels = [p for p in labels if _strip(p.stem, LABEL_SUFFIXES)]
    label_set = {p.resolve() for p in labels}
    images = [p for p in _files(images_root, IMAGE_EXTENSIONS, labels_root.resolve() if nested_labels else None)
              if p.resolve() not in label_set]
    if not images:
        raise DatasetError(f"--images {images_dir}: no images found ({', '.join(IMAGE_EXTENSIONS)}, at any depth)")
    if not labels:
        raise DatasetError(f"--labels {labels_dir}: no label images found ({', '.join(LABEL_EXTENSIONS)}"
                           f"{', with a suffix ' + '/'.join(LABEL_SUFFIXES) if same else ''}, at any depth)")
    exact: Dict[str, Path] = {}
    suffixed: Dict[str, Path] = {}
    for p in labels:
        rel = p.relative_to(labels_root)
        exact.setdefault(_key(rel, p.stem), p)
        stripped = _strip(p.stem, LABEL_SUFFIXES)
        if stripped:
            suffixed.setdefault(_key(rel, stripped), p)
    result, used = Pairing(), set()
    for img in images:
        rel = img.relative_to(images_root)
        stems = [img.stem] + [s for s in [_strip(img.stem, IMAGE_SUFFIXES)] if s]
        candidates = [table.get(_key(rel, stem)) for stem in stems for table in (exact, suffixed)]
        label = next((c for c in candidates if c is not None and c not in used and c != img), None)
        if label is None:
            result.missing_label.append(str(img))
            continue
        used.add(label)
        result.pairs.append((str(img), str(label)))
    result.missing_image = [str(p) for p in labels if p not in used]
    return result
