"""`python -m emoji_privacy anonymize INPUT...`: the command-line tool (emoji_privacy.files.cli, docs/files.md);
`python -m emoji_privacy models`: where each model file was found (emoji_privacy.cli)."""

import sys

if sys.argv[1:2] == ["models"]:
    from .cli import models_main

    sys.exit(models_main(sys.argv[2:]))

from .files.cli import main  # noqa: E402

sys.exit(main())
