"""What a training run logged, kept for its curves: ``save_dir/train_history.json`` and
``save_dir/training_curves.png`` (loss terms, learning rate and evaluation mIoU against the iteration).

    history = TrainHistory.resume(save_dir, run_id, state.iter)   # this run's history up to its checkpoint
    history.add_train(10, lr=0.001, losses={"loss_main": 1.2, "loss_aux1": 1.4})   # at every log line
    history.add_eval(500, miou=0.51, acc=0.93)                                     # at every evaluation
    history.write(save_dir)                                                        # at every checkpoint

The values are the ones the log shows (the loss averages of each log line, the learning rate, the
evaluation scores), so the picture matches ``train.log`` for users without VisualDL. Both files are
replaced atomically. The JSON file carries the run id: a resumed run reads back its own history and
drops what was logged after the checkpoint it resumes (that stretch is trained again), so the curves
continue exactly where the checkpoint was; a history of another run id is not continued.
"""
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List

from paddleseg.utils import charts
from paddleseg.utils.atomic import atomic_write_text
from paddleseg.utils.regular_file import read_text
from paddleseg.utils.visualize import save_rgb

logger = logging.getLogger(__name__)

HISTORY_FILE = "train_history.json"
CURVES_FILE = "training_curves.png"
HISTORY_MAX_BYTES = 256 << 20  # ~100 bytes per log line: a 120k-iteration run logged every iteration is 12 MB


@dataclass
class TrainHistory:
    """One run's logged values: ``train`` rows ``{"iter", "lr", <loss term>: value, ...}`` and ``eval``
    rows ``{"iter", "miou", "acc"}``, in iteration order."""

    run_id: str = ""
    train: List[Dict[str, float]] = field(default_factory=list)
    eval: List[Dict[str, float]] = field(default_factory=list)

    @classmethod
    def resume(cls, save_dir: Path, run_id: str, iteration: int) -> "TrainHistory":
        """``run_id``'s history in ``save_dir`` up to ``iteration`` (where training continues); empty for a
        new run. An unreadable file, or one of another run, is not continued (and is replaced at the
        next write), which the log says."""
        path = Path(save_dir) / HISTORY_FILE
        if not path.exists():
            return cls(run_id)
        try:
            raw = json.loads(read_text(path, HISTORY_MAX_BYTES))
            history = cls(str(raw["run_id"]), list(raw["train"]), list(raw["eval"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("%s: unreadable (%s); the training curves start again from iteration %d", path, e,
                           iteration)
            return cls(run_id)
        if history.run_id != run_id:
            logger.warning("%s: belongs to run %s, not to this run %s; it will be replaced", path,
                           history.run_id or "(none)", run_id)
            return cls(run_id)
        history.train = [row for row in history.train if row["iter"] <= iteration]
        history.eval = [row for row in history.eval if row["iter"] <= iteration]
        return history

    def add_train(self, iteration: int, lr: float, losses: Dict[str, float]) -> None:
        self.train.append({"iter": iteration, "lr": lr, **losses})

    def add_eval(self, iteration: int, miou: float, acc: float) -> None:
        self.eval.append({"iter": iteration, "miou": miou, "acc": acc})

    def loss_names(self) -> List[str]:
        names: List[str] = []
        for row in self.train:
            names += [k for k in row if k not in ("iter", "lr") and k not in names]
        return names

    def write(self, save_dir: Path) -> Path:
        """Replace ``save_dir``'s history file and curves picture; returns the picture's path."""
        save_dir = Path(save_dir)
        atomic_write_text(save_dir / HISTORY_FILE, json.dumps(asdict(self)))
        iters = [row["iter"] for row in self.train]
        losses = {name: ([row["iter"] for row in self.train if name in row],
                         [row[name] for row in self.train if name in row]) for name in self.loss_names()}
        picture = charts.training_curves(losses, (iters, [row["lr"] for row in self.train]),
                                         ([row["iter"] for row in self.eval], [row["miou"] for row in self.eval]))
        save_rgb(picture, save_dir / CURVES_FILE)
        return save_dir / CURVES_FILE
