"""Emotion stage of the pipeline: 7-class FER2013 probabilities (EMOTIONS order) for aligned gray face crops.

- ``classifiers``: the classifier interface, its backends by name (``torch``, ``mini_xception``) and engines
  (onnxruntime, torch), ``load_emotion_classifier``, and the project's one ONNX export;
- ``checkpoint``: project ``.pt`` files (state dict + metadata): load, check, save;
- ``nets``: the project's CNN architectures, built by name;
- ``keras_import``: the ``fer`` package's Keras mini-Xception rebuilt in PyTorch, without TensorFlow;
- ``calibration``: temperature scaling and expected calibration error;
- ``reliability``: the rule that decides whether a reading is reliable or the emotion stays unknown;
- ``onnx_cache``: the checked onnxruntime export of a ``.pt`` kept in the user cache.

No command line of its own: models are trained by ``python -m emoji_privacy.training`` and compared by
``rosrun emoji_privacy evaluate_emotion``.
"""
