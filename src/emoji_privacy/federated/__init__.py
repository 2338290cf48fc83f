"""Federated training of the emotion CNN on Flower: robots share model updates, never faces.

Split the way Flower's quickstarts are: ``task`` (model, client data, local training and
evaluation: no Flower), ``client_app`` (a robot), ``server_app`` (the aggregator: strategy,
SecAgg+, DP, per-round evaluation on PublicTest, export), ``partition`` (FER2013 ``Training``
into client folders) and ``__main__`` (the command line: partition, simulate). The Flower app
configuration for ``flwr run`` is ``config/flower/pyproject.toml``.
"""

from .task import FedConfig

__all__ = ["FedConfig"]
