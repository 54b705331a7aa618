"""Taking over the save folder for a run: which run writes there and what it resumes, the run record,
clean-up after interrupted saves, and the run's log file (``save_dir/train.log``).

The rules of ownership are :mod:`paddleseg.checkpoint.run_dir`'s; nothing is written before the folder
is known to be this run's.
"""
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Iterator, Optional, Tuple

from paddleseg.checkpoint import training as checkpoints
from paddleseg.checkpoint.run_dir import AUTO, RunRecord, resolve
from paddleseg.checkpoint.training import TrainState
from paddleseg.core.report import check_report_dir
from paddleseg.core.training.evaluation_report import REPORT_DIR
from paddleseg.core.training.options import TrainOptions
from paddleseg.cvlibs import Config
from paddleseg.errors import UserError

logger = logging.getLogger(__name__)


def check_writable(save_dir: Path) -> None:
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
        probe = save_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{save_dir}: the save directory is not writable ({e.strerror or e})") from e


def claim_save_dir(cfg: Config, opts: TrainOptions, rank: int,
                   resume_state: Optional[TrainState]) -> Tuple[Optional[str], Optional[Path]]:
    """This run's id and the checkpoint it resumes (None: from scratch); writes the run record. This
    run's checkpoints that fail verification and would be written again are set aside, not replaced."""
    save_dir, resume = Path(opts.save_dir), opts.resume_model
    auto = resume is not None and str(resume) == AUTO
    if rank != 0 and not auto:
        return None, resume  # only rank 0 writes; the others need to know what to load
    claim = resolve(save_dir, resume, resume_state)
    if rank == 0:
        if opts.do_eval:  # the last evaluation replaces it whole: refuse a folder that is not a report now
            check_report_dir(save_dir / REPORT_DIR, "the report folder")
        check_writable(save_dir)
        record = RunRecord.read(save_dir) if not claim.new_record else None
        (record or RunRecord(claim.run_id, time.strftime("%Y-%m-%d %H:%M:%S"), str(cfg.path))).write(save_dir)
        for p in checkpoints.remove_partials(save_dir, claim.run_id):
            logger.warning("removed %s, left by an interrupted save", p)
        if resume is not None:  # a resumed run writes its checkpoints after the resumed one again
            after = (resume_state.iter if resume_state is not None else
                     checkpoints.iteration_of(claim.resume_from) if claim.resume_from is not None else 0)
            for bad, kept in checkpoints.set_aside_invalid(save_dir, claim.run_id, after):
                logger.warning("%s does not verify and this run would write it again: kept as %s", bad, kept.name)
    if auto:
        logger.info("--resume_model auto: %s", f"continuing run {claim.run_id} from {claim.resume_from}"
                    if claim.resume_from else f"no checkpoint of run {claim.run_id} in {save_dir}; "
                                              f"starting from scratch")
    return claim.run_id, claim.resume_from


@contextlib.contextmanager
def log_to_file(path: Optional[Path]) -> Iterator[None]:
    """Copy the package's log records to ``path`` (appending) while the run lasts."""
    if path is None:
        yield
        return
    package = logging.getLogger("paddleseg")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    level = package.level
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        handler.close()
