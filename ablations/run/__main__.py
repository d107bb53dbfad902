"""`python -m ablations.run`: the command line of `ablations.run.cli`."""

import sys

from ablations.run.cli import main

sys.exit(main())
