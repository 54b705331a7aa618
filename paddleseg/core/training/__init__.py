"""Training: the loop over batches (:mod:`.loop`), its options (:mod:`.options`) and what rides along it.

    from paddleseg.core.training.loop import train
    from paddleseg.core.training.options import TrainOptions
    state = train(Config("my.yml"), TrainOptions(save_dir=Path("output/run"), do_eval=True))

Set-up, before anything is written: :mod:`.prepare` (build and check), :mod:`.save_dir` (take over the
save folder), :mod:`.start` (data check, fine-tuning or resume, parallel wrappers). Each iteration:
:mod:`.batches` and :mod:`.step`, held against Ctrl-C and SIGTERM by :mod:`.interruption`, checked by
:mod:`.divergence`. The companions (:mod:`.companion`), one feature each: :mod:`.moving_average`,
:mod:`.progress_log`, :mod:`.visualdl_scalars`, :mod:`.evaluation`, :mod:`.checkpointing`,
:mod:`.training_curves`, :mod:`.evaluation_report`, :mod:`.early_stop`, :mod:`.step_profiler`,
:mod:`.rank_fingerprint`.

This package's ``__init__`` imports nothing, so that train.py checks its flags (:mod:`.options`)
without loading Paddle.
"""
