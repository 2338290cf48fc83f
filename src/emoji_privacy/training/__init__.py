"""Offline training of the emotion CNNs on FER2013 (docs/training.md): ``Training`` fits, ``PublicTest`` selects,
``PrivateTest`` is reported once.

- ``data``: FER2013 from an image folder, its ``.tar.gz`` or Kaggle's CSV, as arrays with their splits (cached);
- ``crops``: the faces re-cut the way the pipeline cuts a camera's (``--crops aligned``);
- ``core``: ``TrainConfig``, augmentation, metrics and ``train`` (resumable per epoch), and the SGD loop's
  ``epoch_batches``/``sgd_step`` that the federated client shares;
- ``calibrate``: the temperature that makes a model's confidence mean what it says;
- ``outputs``: the run folder (checkpoint, ONNX twin, metrics, plots) and ``--export``;
- ``search``: k-fold cross-validation and the hyper-parameter search;
- ``openmp``: the OpenMP wait policy of a process that only trains;
- ``cli``: the command line, ``python -m emoji_privacy.training --help`` (``rosrun emoji_privacy train_emotion``),
  with ``calibrate MODEL.pt...`` to recalibrate trained models.
"""
