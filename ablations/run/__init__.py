"""`python -m ablations.run STUDY.yaml`: run (or resume) a study. The command is `cli.main`."""


def main(argv: list[str] | None = None) -> int:
    """`cli.main`, imported when called: `python -m ablations.run` imports this package before its
    `__main__`, and a Ctrl-C during an import here would escape `__main__`'s handler (a traceback instead
    of `interrupted` and status 130)."""
    from ablations.run.cli import main as run

    return run(argv)


__all__ = ["main"]
