"""`python -m ablations.run`: the command line of `ablations.run.cli`."""

import sys

try:
    from ablations.run.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command itself loads (a fraction of a second): nothing began
    print("\ninterrupted", file=sys.stderr)
    sys.exit(130)  # messages.EXIT_INTERRUPTED, which may not have loaded yet

sys.exit(main())
