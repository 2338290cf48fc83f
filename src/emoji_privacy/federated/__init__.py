"""Federated training of the emotion CNN on Flower: robots share model updates, never faces (docs/federated.md).

Split the way Flower's quickstarts are:

- ``task``: the run's ``FedConfig``, the model, a robot's data, local training (the centralized trainer's SGD
  loop) and evaluation, DP clipping; no Flower;
- ``client_app``: a robot (Flower ClientApp);
- ``server_app``: the aggregator (strategy, SecAgg+, DP, PublicTest every round, checkpoint, export);
- ``partition``: FER2013 ``Training`` split into client folders, IID or label-skewed;
- ``deployment``: a real deployment on this machine (SuperLink and SuperNodes as processes, TLS, authentication);
- ``credentials``: the CA, SuperLink certificate and robot key pairs a fleet needs;
- ``cli``: the command line, ``python -m emoji_privacy.federated {partition,simulate,centralized,deploy-local,
  credentials} --help`` (``rosrun emoji_privacy federated``).

The Flower app configuration for ``flwr run`` is ``config/flower/pyproject.toml``.
"""

from .task import FedConfig

__all__ = ["FedConfig"]
