"""On several ranks: each logs a SHA-256 of its trainable parameters at the end, to check in the logs
that the ranks stayed in sync. BatchNorm's running statistics are left out: Paddle keeps them as
non-trainable parameters, and without SyncBatchNorm (CPU) each rank tracks those of its own shard."""
import hashlib
import logging

from paddleseg.core.training.companion import Companion

logger = logging.getLogger(__name__)


def parameter_fingerprint(model) -> str:
    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        if not p.stop_gradient:
            digest.update(name.encode())
            digest.update(p.numpy().tobytes())
    return digest.hexdigest()


class RankFingerprint(Companion):
    @classmethod
    def for_run(cls, t):
        return cls() if t.world > 1 else None

    def at_end(self, t) -> None:
        logger.info("rank %d trainable-parameter fingerprint: %s", t.rank, parameter_fingerprint(t.model))
