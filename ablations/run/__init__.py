"""`python -m ablations.run STUDY.yaml`: run (or resume) a study. The command is `cli.main`.

`main` loads the command only when called: `python -m ablations.run` imports this package before its
`__main__`, and a Ctrl-C while the command's libraries load must reach `__main__`'s guard (one line, status
130), not land in an import made here."""


def main(argv: list[str] | None = None) -> int:
    from ablations.run.cli import main as run_main

    return run_main(argv)


__all__ = ["main"]
