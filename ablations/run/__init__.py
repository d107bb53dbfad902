"""`python -m ablations.run STUDY.yaml`: run (or resume) a study. The command is `cli.main`."""

from ablations.run.cli import main

__all__ = ["main"]
