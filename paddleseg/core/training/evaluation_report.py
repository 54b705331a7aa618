"""``--do_eval``: the HTML report of the last iteration's evaluation (scores, per-class charts, the worst
images) in ``save_dir/report``, replaced whole (:mod:`paddleseg.core.report`; rank 0). Written after
the checkpoint, so a report that cannot be written costs no checkpoint."""
import logging
from pathlib import Path

from paddleseg.core.report import write_report
from paddleseg.core.training.companion import CheckpointRecord, Companion
from paddleseg.utils.visualize import class_palette

logger = logging.getLogger(__name__)

REPORT_DIR = "report"


class EvaluationReport(Companion):
    @classmethod
    def for_run(cls, t):
        return cls() if t.opts.do_eval and t.rank == 0 else None

    def at_checkpoint(self, t, point: CheckpointRecord) -> bool:
        if point.worst is None:
            return False
        save_dir = Path(t.opts.save_dir)
        report = write_report(save_dir / REPORT_DIR, point.result, point.worst, t.val_ds.class_names,
                              palette=class_palette(point.result.num_classes, t.val_ds.palette),
                              details={"config": t.cfg.path, "save_dir": save_dir, "iteration": point.iteration},
                              name="the report folder")
        logger.info("[EVAL] report of iteration %d: %s", point.iteration, report)
        return False
