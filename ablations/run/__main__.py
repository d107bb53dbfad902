"""`python -m ablations.run`: the command line of `ablations.run.cli`."""

import os
import sys

try:
    from ablations.messages import exit_with  # standard library only: loads in a blink
    from ablations.run.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command itself loads (a fraction of a second): nothing began
    print("\ninterrupted", file=sys.stderr, flush=True)
    # Nothing to close, and no plain exit: after an interrupt escaped code run through the C API (an import
    # runs some), CPython would end the process by SIGINT whatever the status (messages.exit_with).
    os._exit(130)  # messages.EXIT_INTERRUPTED, which may not have loaded yet

exit_with(main())
