"""`python -m emoji_privacy.training --help`."""

import sys

from .cli import main

sys.exit(main())
