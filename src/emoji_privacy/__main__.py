"""`python -m emoji_privacy anonymize INPUT...`: the command-line tool (emoji_privacy.files.cli, docs/files.md)."""

import sys

from .files.cli import main

sys.exit(main())
