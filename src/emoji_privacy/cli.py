"""The package's own command line, beside the tools' (``files.cli``, ``evaluation.cli``, ``training.cli``,
``federated.cli``, ``web.cli``): ``python -m emoji_privacy models`` lists where every model file was found."""

from __future__ import annotations

import argparse
import sys

from .model_files import check_all


def models_main(argv: list[str] | None = None) -> int:
    """Print where each model file is; exit 1 naming every one that is missing or corrupt (nothing is fetched)."""
    ap = argparse.ArgumentParser(prog="python -m emoji_privacy models",
                                 description="List where every model file is found; exit 1 if any is "
                                             "missing or corrupt. Nothing is downloaded.")
    ap.add_argument("--ensure", action="store_true",
                    help="what `make setup` runs: the same check (kept for compatibility; nothing is fetched)")
    ap.parse_args(argv)
    found, errors = check_all()
    for key, path in found.items():
        print(f"{key:18s} {path}")
    for msg in errors.values():
        print(f"error: {msg}", file=sys.stderr)
    return 1 if errors else 0
