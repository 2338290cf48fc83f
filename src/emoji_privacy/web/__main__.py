"""`python -m emoji_privacy.web`: serve the demo website (see cli.py for the options)."""

import sys

from .cli import main

sys.exit(main())
