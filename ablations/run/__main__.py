"""`python -m ablations.run`: the command line of `ablations.run.cli`."""

import sys

from ablations.messages import EXIT_INTERRUPTED, exit_with  # standard library only: loads in a blink

try:
    from ablations.run.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command itself loads (a fraction of a second): nothing began
    print("\ninterrupted", file=sys.stderr)
    exit_with(EXIT_INTERRUPTED)

exit_with(main())
