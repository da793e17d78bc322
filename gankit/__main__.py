"""`python -m gankit ...` is the same as `gankit ...`."""

import sys

from gankit.cli import main

sys.exit(main())
