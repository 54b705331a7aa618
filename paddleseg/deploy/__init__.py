"""The inference runtime shared by every front end (predict.py, tools/infer.py): inputs, image and video reading,
preprocessing, backends, label maps, output names and pictures, atomic writes and exit codes, each once.

    deploy = config.load_deploy(Path("output/export/deploy.yaml"))
    backend = backends.create_backend("onnxruntime", deploy, backends.BackendOptions())
    plan = inputs.plan_outputs("photos/", "output/infer")
    pipeline.predict_images(plan, backend, preprocess.make_preprocess(deploy.transforms), writer, ...)

Imports only the standard library, numpy, OpenCV, PyYAML, Pillow and tqdm (and the standard-library
helpers of :mod:`paddleseg.utils`); a runtime (``paddle.inference``, ``onnxruntime``, ``openvino``) is
imported when its backend is built. A deployment machine installs the package with its ``deploy`` extra and no Paddle.

Modules: ``errors`` (exit codes, DeployError, ImageError), ``config`` (deploy.yaml), ``model_files``
(model files checked before a runtime reads them), ``inputs`` (what ``--image_path`` names),
``images`` (reading, the pixel limit), ``preprocess``, ``backends/`` (one class per runtime),
``postprocess`` (labels from a model output), ``outputs`` (names and pictures), ``pipeline`` (the
loop), ``benchmark``, ``tensorrt_settings`` and ``tensorrt_cache``; ``precision`` (which precision a CPU
runtime runs, the accuracy gate, deploy.yaml's verified precisions), ``openvino_settings`` and
``openvino_cache`` (compiled OpenVINO models kept and checked), ``speed`` (interleaved timing, the CPU).
Videos (``--video_path``): ``video`` (reading a file, a camera or frames; the MP4 writer), ``flicker``
(optical flow, motion-compensated flicker), ``smoothing`` (the moving average of probabilities) and
``video_args`` (the flags of both front ends); inputs, outputs and the pipeline have their video parts.
"""
