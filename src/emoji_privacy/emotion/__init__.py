"""Emotion stage: classifiers (backends by name), project checkpoints, network architectures,
and the importer of the ``fer`` package's Keras model."""
