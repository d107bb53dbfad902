"""`python -m ablations.report`: see ablations.report.cli."""

import sys

from ablations.report.cli import main

sys.exit(main())
