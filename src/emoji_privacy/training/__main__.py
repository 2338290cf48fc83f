"""`python -m emoji_privacy.training --help`."""

import sys

from .openmp import spin_openmp_workers

spin_openmp_workers()  # before torch loads: this process only trains

from .cli import main  # noqa: E402

sys.exit(main())
