"""`python -m tsa`: the same as `tsa.cli.main`."""

import sys

from tsa.cli import main

sys.exit(main())
