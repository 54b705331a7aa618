"""``--do_eval``: evaluate at every scheduled checkpoint (the moving average of the weights with
``--use_ema``), log the scores, and keep the best mIoU's weights in ``save_dir/best_model`` (rank 0).
At the last iteration the per-class table is logged and the worst images are kept for the report
(:mod:`paddleseg.core.training.evaluation_report`). The checkpoint written after it records the best."""
import logging
from pathlib import Path

from paddleseg.checkpoint import training as checkpoints
from paddleseg.core.report import GALLERY_IMAGES, WorstImages
from paddleseg.core.training.companion import CheckpointRecord, Companion
from paddleseg.core.val import evaluate

logger = logging.getLogger(__name__)


class Evaluation(Companion):
    @classmethod
    def for_run(cls, t):
        return cls() if t.opts.do_eval and t.rank == 0 else None

    def at_checkpoint(self, t, point: CheckpointRecord) -> bool:
        if not point.scheduled:
            return False
        state, last = t.state, point.iteration == t.cfg.iters
        worst = WorstImages(GALLERY_IMAGES) if last else None
        evaluated = t.ema.model if t.ema is not None else t.model
        result = evaluate(evaluated, t.val_ds, num_workers=t.eval_num_workers, worst=worst, **t.cfg.test_config)
        t.model.train()
        miou = result.miou()
        logger.info("[EVAL] iter %d%s: mIoU=%.4f, Acc=%.4f, Kappa=%.4f, Dice=%.4f", state.iter,
                    " (EMA weights)" if t.ema is not None else "", miou, result.pixel_accuracy(), result.kappa(),
                    result.mean_dice())
        if miou > state.best_miou:
            state.best_miou, state.best_iter = miou, state.iter
            checkpoints.save_best(Path(t.opts.save_dir), evaluated, miou, state.iter,
                                  {"acc": result.pixel_accuracy(), "kappa": result.kappa()}, state.run_id)
        logger.info("[EVAL] best mIoU %.4f at iteration %d", state.best_miou, state.best_iter)
        if last:
            logger.info("[EVAL] per-class results at iteration %d (mIoU %.4f):\n%s", state.iter, miou,
                        result.table(t.val_ds.class_names))
        point.result, point.worst = result, worst
        return False
