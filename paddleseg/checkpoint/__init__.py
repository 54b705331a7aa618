"""Everything about checkpoints in one place.

- :mod:`~paddleseg.checkpoint.safe_load`: reading ``.pdparams`` / ``.pdopt`` without running code.
- :mod:`~paddleseg.checkpoint.weights`: loading weights into a model (ours and both released formats).
- :mod:`~paddleseg.checkpoint.released`: weights by URL or released name, downloaded once into a
  verified cache.
- :mod:`~paddleseg.checkpoint.training`: training checkpoints (``iter_N/``, ``best_model/``), atomic
  and verified.
- :mod:`~paddleseg.checkpoint.run_dir`: a run owns its save_dir (lock, run id).
"""
from paddleseg.checkpoint.released import RELEASED, ReleasedModel, fetch
from paddleseg.checkpoint.safe_load import UnsafeCheckpointError, safe_load
from paddleseg.checkpoint.training import (
                                          BEST_DIR,
                                          OPT_FILE,
                                          SCORE_FILE,
                                          STATE_FILE,
                                          TrainState,
                                          checkpoint_folders,
                                          latest_valid,
                                          load_checkpoint,
                                          owner,
                                          prune,
                                          read_train_state,
                                          remove_partials,
                                          save_best,
                                          save_checkpoint,
)
from paddleseg.checkpoint.weights import (
                                          MODEL_FILE,
                                          LoadReport,
                                          checkpoint_folder,
                                          load_entire_model,
                                          read_state_dict,
                                          resolve_weights_path,
)

__all__ = ["UnsafeCheckpointError", "safe_load", "RELEASED", "ReleasedModel", "fetch", "MODEL_FILE", "LoadReport", "load_entire_model", "read_state_dict",
           "resolve_weights_path", "BEST_DIR", "OPT_FILE", "SCORE_FILE", "STATE_FILE", "TrainState",
           "checkpoint_folder", "checkpoint_folders", "latest_valid", "load_checkpoint", "owner", "prune",
           "read_train_state", "remove_partials", "save_best", "save_checkpoint"]
