"""`python -m emoji_privacy.federated`: partition, simulate, centralized, deploy-local, credentials (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
