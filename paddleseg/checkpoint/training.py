"""Training checkpoints that are either complete or absent, and that name the run that wrote them.

Layout under ``save_dir``::

    run.json                         the run that owns this folder (paddleseg/checkpoint/run_dir.py)
    iter_1000/  model.pdparams  model.pdopt  train_state.json
    best_model/ model.pdparams  score.json

A checkpoint is written into a hidden ``.iter_N.partial-<run id>-<pid>`` folder, every file flushed
to disk, ``train_state.json`` (with the SHA-256 of each file and the run id) written last, and only
then renamed to ``iter_N``: a crash or a full disk mid-save leaves at most a hidden partial folder,
never an ``iter_N`` that looks valid. Loading checks those digests, so a truncated or corrupted file
is named, not loaded. Pruning, partial-save clean-up and best-model replacement act only on folders
that carry this run's id: nothing another run or the user put in ``save_dir`` is touched.
"""
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import paddle

from paddleseg.checkpoint.weights import MODEL_FILE, checkpoint_folder, load_entire_model, read_state_dict
from paddleseg.errors import CheckpointError
from paddleseg.utils.atomic import fsync_dir, fsync_file
from paddleseg.utils.paddle_compat import accumulator_name, generated_parameter_names, split_accumulator_name
from paddleseg.utils.regular_file import read_text

logger = logging.getLogger(__name__)

OPT_FILE, STATE_FILE, SCORE_FILE = "model.pdopt", "train_state.json", "score.json"
SCALER_KEY = "GradScaler"  # fp16's loss-scaler state, saved in model.pdopt beside the optimizer's
EMA_KEY = "EMA"  # --use_ema's averaged weights ({structured name: numpy array}), also in model.pdopt
BEST_DIR = "best_model"
_ITER_DIR = re.compile(r"^iter_(\d+)$")
# run ids as paddleseg.checkpoint.run_dir.new_run_id writes them (20261123-153000-1a2b3c4d): they become
# part of folder names, so nothing else (a '/', '..') is accepted from a file
RUN_ID = re.compile(r"[0-9a-z][0-9a-z-]{0,63}")
# hidden folders of a save in progress (.X.partial-<run>-<pid>) and of a replaced folder (.X.old-<run>-<pid>)
_HIDDEN = re.compile(r"^\.(?P<final>iter_\d+|best_model)\.(?P<kind>partial|old)-(?P<run>[0-9a-z-]+)-(?P<pid>\d+)$")
PathLike = Union[str, Path]
JSON_MAX_BYTES = 1 << 20  # train_state.json, score.json, run.json: a few hundred bytes each


@dataclass
class TrainState:
    """What besides weights a resume needs. ``iter`` is the last completed iteration, ``iters`` the
    run's planned length, ``run_id`` the run that wrote it (empty in checkpoints of earlier versions)."""

    iter: int
    seed: int
    best_miou: float = -1.0
    best_iter: int = -1
    batch_size: int = 0
    world_size: int = 1
    files: Dict[str, str] = field(default_factory=dict)  # file name -> sha256
    run_id: str = ""
    iters: int = 0

    @classmethod
    def from_json(cls, raw: object, source: Path) -> "TrainState":
        """Build from parsed JSON, checking every field's type (a hand-edited file is named, not trusted)."""
        if not isinstance(raw, dict):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(raw).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise CheckpointError(f"{source}: unknown field(s) {', '.join(unknown)}")
        for name in ("iter", "seed"):
            if name not in raw:
                raise CheckpointError(f"{source}: the field '{name}' is missing")
        checks = {"iter": _non_negative_int, "seed": _int, "best_iter": _int, "batch_size": _non_negative_int,
                  "world_size": _positive_int, "iters": _non_negative_int, "best_miou": _number,
                  "run_id": _run_id, "files": _digests}
        for name, value in raw.items():
            problem = checks[name](value)
            if problem:
                raise CheckpointError(f"{source}: the field '{name}' must be {problem}, got {value!r}")
        if raw.get("iters", 0) and raw["iter"] > raw["iters"]:
            raise CheckpointError(f"{source}: the field 'iter' ({raw['iter']}) is beyond the run's planned length "
                                  f"'iters' ({raw['iters']})")
        return cls(**raw)


def _int(v) -> str:
    return "" if isinstance(v, int) and not isinstance(v, bool) else "an integer"


def _non_negative_int(v) -> str:
    return "" if not _int(v) and v >= 0 else "an integer >= 0"


def _positive_int(v) -> str:
    return "" if not _int(v) and v >= 1 else "an integer >= 1"


def _number(v) -> str:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return "" if ok else "a finite number"


def _str(v) -> str:
    return "" if isinstance(v, str) else "a string"


def _run_id(v) -> str:
    ok = isinstance(v, str) and (v == "" or RUN_ID.fullmatch(v) is not None)
    return "" if ok else "a run id of lowercase letters, digits and '-'"


def _digests(v) -> str:
    ok = isinstance(v, dict) and all(isinstance(k, str) and isinstance(d, str) for k, d in v.items())
    return "" if ok else "an object of file name -> SHA-256 strings"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: Dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def _hidden_name(final: Path, kind: str, run_id: str) -> Path:
    return final.with_name(f".{final.name}.{kind}-{run_id or 'norun'}-{os.getpid()}")


def _publish(tmp: Path, final: Path, run_id: str) -> None:
    """Rename the complete ``tmp`` folder to ``final``, replacing this run's older ``final`` safely."""
    fsync_dir(tmp)
    old = None
    if final.exists():
        if owner(final) != run_id:  # checked at start too; a folder that appeared since is never replaced
            raise CheckpointError(f"{final}: exists and was not written by this run ({run_id}); it is left as "
                                  f"it is")
        old = _hidden_name(final, "old", run_id)
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_folder(final: Path, files: Dict[str, object], last_json: Dict[str, Dict], run_id: str) -> None:
    """Write ``files`` (name -> object for paddle.save) then the JSON files, atomically as ``final``."""
    tmp = _hidden_name(final, "partial", run_id)
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for name, obj in files.items():
            paddle.save(obj, str(tmp / name))
            fsync_file(tmp / name)
        for name, data in last_json.items():
            if name == STATE_FILE:
                data = dict(data, files={n: sha256(tmp / n) for n in files})
            _write_json(tmp / name, data)
        _publish(tmp, final, run_id)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"{final}: cannot write the checkpoint ({e.strerror or e}); "
                              f"the checkpoints already in {final.parent} are intact") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def optimizer_state(model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer) -> Dict:
    """The optimizer's state keyed by structured parameter names.

    Paddle keys accumulators by generated names (``conv2d_12.w_0_moment1_0``), which depend on how many
    layers the process built before the model; structured names do not, so a checkpoint resumes in
    any process."""
    by_generated = generated_parameter_names(model)
    out = {}
    for key, value in optimizer.state_dict().items():
        split = split_accumulator_name(key, by_generated)
        out[f"{by_generated[split[0]]}@{split[1]}" if split else key] = value
    return out


def restore_optimizer_state(model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer, state: Dict) -> None:
    to_generated = {name: generated for generated, name in generated_parameter_names(model).items()}
    restored = {}
    for key, value in state.items():
        name, sep, accumulator = key.partition("@")
        restored[accumulator_name(to_generated[name], accumulator) if sep and name in to_generated else key] = value
    optimizer.set_state_dict(restored)


def save_checkpoint(save_dir: PathLike, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                    state: TrainState, scaler: Optional[paddle.amp.GradScaler] = None, ema=None) -> Path:
    """Write ``save_dir/iter_<state.iter>`` atomically (with the fp16 loss scaler's state and the
    weights' moving average (paddleseg/core/ema.py), if any); returns its path."""
    final = Path(save_dir) / f"iter_{state.iter}"
    opt = optimizer_state(model, optimizer)
    if scaler is not None:
        opt[SCALER_KEY] = scaler.state_dict()
    if ema is not None:
        opt[EMA_KEY] = ema.state_dict()
    _write_folder(final, {MODEL_FILE: model.state_dict(), OPT_FILE: opt}, {STATE_FILE: asdict(state)}, state.run_id)
    return final


def save_best(save_dir: PathLike, model: paddle.nn.Layer, miou: float, iteration: int,
              metrics: Optional[Dict] = None, run_id: str = "") -> Path:
    """Replace ``save_dir/best_model`` atomically, with its score and run id in ``score.json``."""
    final = Path(save_dir) / BEST_DIR
    score = {"miou": miou, "iter": iteration, **(metrics or {}), "run_id": run_id}
    _write_folder(final, {MODEL_FILE: model.state_dict()}, {SCORE_FILE: score}, run_id)
    return final


def owner(folder: PathLike) -> Optional[str]:
    """The run id recorded in a checkpoint or best-model folder (``""`` for one of an earlier version),
    or None when it is not such a folder (no readable ``train_state.json`` / ``score.json``)."""
    folder = Path(folder)
    for name in (STATE_FILE, SCORE_FILE):
        try:
            raw = json.loads(read_text(folder / name, JSON_MAX_BYTES))
        except (OSError, ValueError):
            continue
        if isinstance(raw, dict):
            run_id = raw.get("run_id", "")
            return run_id if isinstance(run_id, str) else None
    return None


def read_train_state(folder: PathLike) -> TrainState:
    """The verified state of a checkpoint folder; :class:`CheckpointError` says what is wrong."""
    folder = checkpoint_folder(folder)
    if not folder.exists():
        raise CheckpointError(f"{folder}: checkpoint not found")
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: --resume_model takes a checkpoint folder (save_dir/iter_N)")
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        raise CheckpointError(f"{folder}: not a complete training checkpoint (no {STATE_FILE}; was its save "
                              f"interrupted?)")
    try:
        raw = json.loads(read_text(state_file, JSON_MAX_BYTES))
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{state_file}: unreadable training state: {e}") from e
    state = TrainState.from_json(raw, state_file)
    for name in (MODEL_FILE, OPT_FILE):
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the checkpoint")
        expected = state.files.get(name)
        if expected is None:
            raise CheckpointError(f"{state_file}: records no checksum for {name}")
        if sha256(path) != expected:
            raise CheckpointError(f"{path}: corrupt or truncated (its SHA-256 differs from the one recorded "
                                  f"when it was saved)")
    return state


def load_checkpoint(folder: PathLike, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                    scaler: Optional[paddle.amp.GradScaler] = None, ema=None) -> TrainState:
    """Verify, then load model, optimizer (with its LR schedule) and, given them, the fp16 loss scaler's
    state and the weights' moving average from a checkpoint folder. Without a saved average, ``ema``
    starts again from the loaded weights (logged)."""
    state = read_train_state(folder)
    folder = checkpoint_folder(folder)
    load_entire_model(model, folder / MODEL_FILE, strict=True)
    opt = read_state_dict(folder / OPT_FILE)
    scaler_state = opt.pop(SCALER_KEY, None)
    ema_state = opt.pop(EMA_KEY, None)
    if ema is not None:
        if ema_state is not None:
            ema.load_state_dict(ema_state, str(folder / OPT_FILE))
        else:
            ema.reset(model)
            logger.warning("%s holds no moving average of the weights (trained without --use_ema): the average "
                           "starts from the checkpoint's weights", folder / OPT_FILE)
    if scaler is not None:
        if scaler_state:
            scaler.load_state_dict(scaler_state)
        else:
            logger.warning("%s holds no loss-scaler state (saved in fp32, or by an earlier version): the fp16 loss "
                           "scale starts again from its initial value", folder / OPT_FILE)
    try:
        restore_optimizer_state(model, optimizer, opt)
    except (AssertionError, KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{folder / OPT_FILE}: does not fit this model and optimizer ({e}); was it saved "
                              f"with another config?") from e
    return state


def checkpoint_folders(save_dir: PathLike, run_id: Optional[str] = None) -> List[Path]:
    """``iter_N`` folders under ``save_dir``, oldest first (complete or not); with ``run_id``, only
    those that run wrote."""
    save_dir = Path(save_dir)
    if not save_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in save_dir.iterdir() if (m := _ITER_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if run_id is None or owner(p) == run_id]


def iteration_of(folder: PathLike) -> int:
    """N of a checkpoint folder ``iter_N``."""
    match = _ITER_DIR.match(Path(folder).name)
    if match is None:
        raise ValueError(f"{folder}: not a checkpoint folder name (iter_N)")
    return int(match.group(1))


def set_aside_invalid(save_dir: PathLike, run_id: str, after: int) -> List[tuple]:
    """Rename run ``run_id``'s checkpoints after iteration ``after`` that fail verification to
    ``iter_N.invalid-<time>`` (a resumed run would write them again, replacing what might still be
    recovered by hand); returns the ``(old path, new path)`` pairs."""
    moved = []
    for folder in checkpoint_folders(save_dir, run_id):
        if iteration_of(folder) <= after:
            continue
        try:
            read_train_state(folder)
            continue
        except CheckpointError:
            pass
        stamp, n = time.strftime("%Y%m%d-%H%M%S"), 0
        kept = folder.with_name(f"{folder.name}.invalid-{stamp}")
        while kept.exists():
            n += 1
            kept = folder.with_name(f"{folder.name}.invalid-{stamp}-{n}")
        os.rename(folder, kept)
        moved.append((folder, kept))
    return moved


def latest_valid(save_dir: PathLike, run_id: str) -> Optional[Path]:
    """The newest checkpoint of run ``run_id`` that verifies, or None."""
    for folder in reversed(checkpoint_folders(save_dir, run_id)):
        try:
            read_train_state(folder)
            return folder
        except CheckpointError as e:
            logger.warning("skipping %s", e)
    return None


def prune(save_dir: PathLike, keep: int, run_id: str) -> List[Path]:
    """Delete all but the newest ``keep`` checkpoints of run ``run_id`` (``keep`` <= 0 keeps all);
    returns the deleted. Folders of other runs, or not written by a run, are never touched."""
    folders = checkpoint_folders(save_dir, run_id)
    if keep <= 0 or len(folders) <= keep:
        return []
    doomed = folders[:-keep]
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed


def remove_partials(save_dir: PathLike, run_id: str) -> List[Path]:
    """Clean up after this run's saves that were killed: delete its ``.X.partial-<run>-*`` folders (never
    valid), and put its ``.X.old-<run>-*`` folder back as ``X`` if the kill came between the two renames
    of :func:`_publish`. Hidden folders of other runs, or of anyone else, are left alone."""
    save_dir = Path(save_dir)
    if not save_dir.is_dir():
        return []
    removed = []
    for p in sorted(save_dir.iterdir()):
        m = _HIDDEN.match(p.name)
        if not (m and p.is_dir() and m.group("run") == run_id):
            continue
        if m.group("kind") == "old":
            final = save_dir / m.group("final")
            if not final.exists():
                os.rename(p, final)
                logger.warning("restored %s from an interrupted save", final)
                continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed
