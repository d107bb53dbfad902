"""The README and the topic pages in docs/: every relative link (page or picture) leads to a file of the
repository, and the README, the front page, links every topic page."""

import re
from pathlib import Path

import pytest

from test_run_support import uri, workdir  # noqa: F401 (workdir is a fixture)

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_lead_to_files(page):
    targets = [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", t)]
    missing = [t for t in targets if not (page.parent / t).exists()]
    assert not missing, missing


def test_the_readme_links_every_topic_page():
    readme = (ROOT / "README.md").read_text()
    assert [page.name for page in PAGES[1:] if f"](docs/{page.name})" not in readme] == []


def docs_example_study() -> tuple[str, list[str]]:
    """docs/studies.md's example study (between its `example-study` markers) and the arguments of the
    --dry-run command the page shows for it."""
    page = (ROOT / "docs" / "studies.md").read_text()
    block = re.search(r"<!-- example-study -->\n```yaml\n(.*?)```\n<!-- /example-study -->", page, re.S)
    command = re.search(r"python -m ablations\.run my_study\.yaml (--dry-run[^#\n]*)", page)
    assert block and command, "docs/studies.md lost its example study or the command that checks it"
    return block.group(1), command.group(1).split()


def test_the_docs_example_study_is_complete_and_dry_runs_as_written(workdir, monkeypatch, capsys):  # noqa: F811
    from ablations.run import main
    from ablations.run.study_file import load_study

    text, arguments = docs_example_study()
    path = workdir / "my_study.yaml"
    path.write_text(text)
    spec = load_study(path)
    # What a newcomer's first Figure 5 study needs and the example once left out (issue 27): the paper's
    # protocol, one thread a trial for --workers 2, a probe on a test subset, a description.
    assert spec.name == "my_study" and spec.description
    assert (spec.base.augment.protocol, spec.base.augment.base_crop) == ("asymmetric", True)
    assert spec.base.train.num_threads == 1 and spec.base.data.test_subset == 2000
    assert spec.search.pairs == ["crop", "color", "blur"]  # 9 ordered pairs x 2 temperatures: 18 cells
    monkeypatch.delenv("SIMCLR_DATA", raising=False)  # the synthetic set needs no data folder
    assert main([str(path), *arguments, "--tracking-uri", uri(workdir)]) == 0
    out = capsys.readouterr().out
    assert "18 cells x 2 seeds = 36 trials" in out and "nothing was trained" in out
    assert not (workdir / "runs").exists()


def test_the_add_your_own_augmentation_example_dry_runs_as_written(workdir, monkeypatch, capsys):  # noqa: F811
    """docs/augmentations.md's op and study, saved as the page says, dry-run with the page's flags: the
    user op, the torchvision op and crop are found, keep the contract and make the 3 x 3 grid."""
    from ablations.run import main
    from ablations.design import op_sources

    page = (ROOT / "docs" / "augmentations.md").read_text()
    op = re.search(r"<!-- example-op -->\n```python\n(.*?)```\n<!-- /example-op -->", page, re.S)
    study = re.search(r"<!-- example-op-study -->\n```yaml\n(.*?)```\n<!-- /example-op-study -->", page, re.S)
    command = re.search(r"python -m ablations\.run my_ops_study\.yaml (--dry-run[^#\n]*)", page)
    assert op and study and command, "docs/augmentations.md lost its example op, study or command"
    (workdir / "my_ops.py").write_text(op.group(1))
    (workdir / "my_ops_study.yaml").write_text(study.group(1))
    monkeypatch.delenv("SIMCLR_DATA", raising=False)
    try:
        assert main([str(workdir / "my_ops_study.yaml"), *command.group(1).split(), "--tracking-uri", uri(workdir)]) == 0
    finally:
        op_sources.begin_study()
    out = capsys.readouterr().out
    assert f"op solarize: user my_ops:solarize ({workdir / 'my_ops.py'}, sha256 " in out
    assert "op tv_solarize: torchvision tv:RandomSolarize (torchvision " in out
    assert "9 cells x 3 seeds = 27 trials" in out and "nothing was trained" in out
