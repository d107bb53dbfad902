"""ablations.design.op_sources: a study file names ops that are not built in (a user's function by import
path, an installed package's entry point, a torchvision transform), checked from their source before
torch loads, with one line naming the file, the key and what is allowed where they are wrong."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ablations.run import main
from ablations.run.op_loading import load_ops
from ablations.run.study_file import StudyError, load_study
from ablations.design import op_sources

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BASE = """\
base:
  data: {dataset: synthetic, synthetic_per_class: 16, synthetic_classes: 4, synthetic_size: 16}
  model: {encoder: small_cnn, width: 8}
  train: {epochs: 1, batch_size: 16, num_threads: 1, device: cpu}
  probe: {max_iter: 20, knn_k: 5, knn_every: 1}
"""


def write_study(folder: Path, body: str, name: str = "mine") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + BASE + textwrap.dedent(body))
    return path


@pytest.fixture
def with_solarize(tmp_path):
    shutil.copy(EXAMPLES / "solarize_ops.py", tmp_path / "my_ops.py")
    yield tmp_path
    op_sources.begin_study()  # the next test's study starts from the built-in ops


def refusal(path: Path) -> str:
    with pytest.raises(StudyError) as caught:
        load_study(path)
    return str(caught.value)


def test_a_user_op_by_import_path_is_named_like_a_built_in_one(with_solarize):
    spec = load_study(write_study(with_solarize, "ops: {solarize: my_ops:solarize}\n"
                                                 "search: {pairs: [crop, solarize]}\n"))
    assert [trial.run_name for trial in spec.trials()] == [
        "crop seed=0", "crop+solarize seed=0", "solarize+crop seed=0", "solarize seed=0"]
    source = spec.ops["solarize"]
    assert (source.kind, source.target, Path(source.path)) == ("user", "my_ops:solarize", with_solarize / "my_ops.py")
    assert len(source.sha256) == 64 and spec.ops["crop"].kind == "built-in"
    assert source.label().startswith("user my_ops:solarize (") and f"sha256 {source.sha256[:12]})" in source.label()


def test_a_bad_parameter_of_a_user_op_is_refused_before_torch_loads(with_solarize):
    study = write_study(with_solarize, "ops: {solarize: my_ops:solarize}\n"
                                       "search: {grid: {augment.pipeline: [[crop, {op: solarize, p: 1.5}]]}}\n")
    code = ("import sys\nfrom ablations.run.study_file import load_study, StudyError\n"
            f"try:\n    load_study({str(study)!r})\nexcept StudyError as error:\n    print(error)\n"
            "print('torch' in sys.modules)")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines == [f"{study}: search.grid.augment.pipeline[0][1].p (solarize): 1.5 is not allowed; expected a "
                     f"number in [0, 1]", "False"]


@pytest.mark.parametrize("ops, key, says", [
    ("{solarize: missing_ops:solarize}", "ops.solarize", "no module 'missing_ops' beside the study file or on sys.path"),
    ("{solarize: my_ops:solarise}", "ops.solarize", "defines no function 'solarise' at its top level"),
    ("{solarize: my_ops}", "ops.solarize", "'my_ops' is not allowed; expected module:function"),
    ("{crop: my_ops:solarize}", "ops.crop", "crop is a built-in op; give yours another name"),
    ("{solarize: {op: my_ops:solarize, strength: 1}}", "ops.solarize.strength", "unknown parameter; solarize takes p, threshold"),
    ("{solarize: {op: my_ops:solarize, threshold: 2}}", "ops.solarize.threshold", "2 is not allowed; expected a number in [0, 1]"),
    ("{tv: 'tv:RandomSolarise'}", "ops.tv", "torchvision.transforms.v2 has no transform 'RandomSolarise'"),
    ("{tv: 'tv:RandomSolarize'}", "ops.tv", "RandomSolarize needs threshold; give them here"),
])
def test_an_op_that_cannot_be_found_or_read_is_one_line_naming_its_key(with_solarize, ops, key, says):
    text = refusal(write_study(with_solarize, f"ops: {ops}\n"))
    assert text.startswith(f"{with_solarize / 'mine.yaml'}: {key}: ") and says in text and "\n" not in text


def test_an_undeclared_op_is_unknown_and_a_study_read_before_leaves_none_behind(with_solarize):
    load_study(write_study(with_solarize, "ops: {solarize: my_ops:solarize}\nsearch: {pairs: [crop, solarize]}\n"))
    text = refusal(write_study(with_solarize, "search: {pairs: [crop, solarize]}\n", name="other"))
    assert "search.pairs[1]: unknown augmentation 'solarize'" in text


def test_a_user_op_that_breaks_the_contract_stops_the_dry_run_before_anything_trains(with_solarize, capsys):
    (with_solarize / "bad_ops.py").write_text(
        "def darken(images, generator, *, amount: float = 0.5):\n    return images.mul_(amount)\n")
    study = write_study(with_solarize, "ops: {darken: bad_ops:darken}\nsearch: {pairs: [crop, darken]}\n")
    assert main([str(study), "--dry-run", "--tracking-uri", f"sqlite:///{with_solarize}/mlflow.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {study}: ops.darken: op darken breaks the op contract (in place): it changed "
                          f"its input batch") and "nothing was trained" in err and "\n" not in err


def test_a_torchvision_transform_and_a_user_op_load_and_keep_the_contract(with_solarize):
    spec = load_study(write_study(with_solarize, "ops:\n  solarize: my_ops:solarize\n"
                                                 "  tv_solarize: {op: 'tv:RandomSolarize', threshold: 0.5}\n"
                                                 "search: {pairs: [crop, solarize, tv_solarize]}\n"))
    assert spec.ops["tv_solarize"].record() == {"kind": "torchvision", "target": "tv:RandomSolarize",
                                                "package": "torchvision", "version": spec.ops["tv_solarize"].version,
                                                "defaults": {"threshold": 0.5}}
    load_ops(spec)
    from simclr_core.augmentations import OPS

    assert {"solarize", "tv_solarize"} <= set(OPS)


def make_package(site: Path, name: str = "posterize_ops", version: str = "0.3.1") -> None:
    """A tiny installed package, as pip leaves one: its module and a dist-info with an entry point."""
    (site / f"{name}.py").write_text(textwrap.dedent('''\
        from typing import Annotated
        import torch
        from simclr_core.op_schema import Range

        def posterize(images, generator, *, p: Annotated[float, Range(0, 1)] = 0.5, bits: int = 3):
            apply = torch.rand(images.shape[0], generator=generator) < p
            levels = 2 ** bits - 1
            return torch.where(apply.view(-1, 1, 1, 1), (images * levels).floor() / levels, images)
        '''))
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[simclr_ablations.ops]\nposterize = {name}:posterize\n")
    (info / "RECORD").write_text(f"{name}.py,,\n{info.name}/METADATA,,\n{info.name}/entry_points.txt,,\n")


def test_an_installed_package_adds_an_op_through_its_entry_point(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    make_package(site)
    monkeypatch.syspath_prepend(str(site))
    try:
        spec = load_study(write_study(tmp_path, "search: {pairs: [crop, posterize]}\n"))
        source = spec.ops["posterize"]
        assert (source.kind, source.target, source.package, source.version) == (
            "entry point", "posterize_ops:posterize", "posterize_ops", "0.3.1")
        load_ops(spec)
        # Named by import path instead, the same module still records the package it was installed with.
        declared = load_study(write_study(tmp_path, "ops: {poster: posterize_ops:posterize}\n"
                                                    "search: {pairs: [crop, poster]}\n", "declared")).ops["poster"]
        assert (declared.kind, declared.package, declared.version) == ("user", "posterize_ops", "0.3.1")
        text = refusal(write_study(tmp_path, "search: {grid: {augment.pipeline: [[{op: posterize, bits: 2.5}]]}}\n",
                                   "bad"))
        assert text.endswith("search.grid.augment.pipeline[0][0].bits (posterize): 2.5 is not allowed; expected "
                             "an integer")
    finally:
        op_sources.begin_study()


def test_an_op_named_by_its_file_is_read_from_the_study_files_folder(with_solarize):
    folder = with_solarize / "studies"
    folder.mkdir()
    spec = load_study(write_study(folder, "ops: {solarize: ../my_ops.py:solarize}\nsearch: {pairs: [crop, solarize]}\n"))
    assert Path(spec.ops["solarize"].path) == with_solarize / "my_ops.py"
    load_ops(spec)
    text = refusal(write_study(folder, "ops: {solarize: my_ops.py:solarize}\n", "other"))
    assert f"ops.solarize: no file {folder / 'my_ops.py'} (a path is read from the study file's folder" in text


def test_a_module_named_like_one_already_imported_is_refused_not_swapped(with_solarize):
    # A json.py of the user's, beside the study: found first, but the standard library's json is in use.
    shutil.copy(with_solarize / "my_ops.py", with_solarize / "json.py")
    spec = load_study(write_study(with_solarize, "ops: {solarize: json:solarize}\nsearch: {pairs: [crop, solarize]}\n"))
    with pytest.raises(StudyError, match=r"ops.solarize: a module named json is already imported from .*json/__init__.py, "
                                         r"not .*json.py; give your module another name"):
        load_ops(spec)
    import json

    assert json.dumps([1]) == "[1]"


def test_the_ops_hash_covers_the_helper_modules_of_its_own_folder(tmp_path):
    """An edit in a helper module the op imports from beside it (or, in a package, relatively) is an edit of
    the op; a library it imports, or a file it does not import, is not part of it."""
    import hashlib

    ops = tmp_path / "ops"
    (ops / "pkg").mkdir(parents=True)
    (ops / "lonely.py").write_text("import torch\n\ndef op(images, generator):\n    return images\n")
    (ops / "helper.py").write_text("from deeper import k\nSCALE = 1.0\n")
    (ops / "deeper.py").write_text("k = 2\n")
    (ops / "unrelated.py").write_text("x = 1\n")
    (ops / "mine.py").write_text("import torch\nfrom helper import SCALE\n\ndef op(images, generator):\n"
                                 "    return images * SCALE\n")
    (ops / "pkg" / "__init__.py").write_text("")
    (ops / "pkg" / "util.py").write_text("Y = 1\n")
    (ops / "pkg" / "packed.py").write_text("from .util import Y\n\ndef op(images, generator):\n    return images\n")

    def hashed(name: str) -> str:
        path = ops / name
        return op_sources.code_hash(path, path.read_bytes())

    # Only libraries imported: the file's own sha256, the hash recorded before helpers counted.
    assert hashed("lonely.py") == hashlib.sha256((ops / "lonely.py").read_bytes()).hexdigest()
    assert op_sources._local_imports((ops / "mine.py").resolve(), (ops / "mine.py").read_bytes(), ops.resolve(),
                                     None) == {(ops / "helper.py").resolve(), (ops / "deeper.py").resolve()}
    before, packed = hashed("mine.py"), hashed("pkg/packed.py")
    (ops / "unrelated.py").write_text("x = 2\n")
    assert hashed("mine.py") == before
    (ops / "deeper.py").write_text("k = 3\n")  # two imports away
    assert hashed("mine.py") != before
    (ops / "pkg" / "util.py").write_text("Y = 2\n")  # a relative import in a package
    assert hashed("pkg/packed.py") != packed


def test_the_ops_hash_follows_a_helper_package_not_a_library_and_not_the_path_spelling(tmp_path):
    """An absolute import inside a helper package is resolved from where the op is imported (its folder), as
    Python does; an installed op's hash takes its own package only (a library beside it in site-packages is
    recorded by version, not hashed); a symlinked folder hashes as the real one."""
    ops = tmp_path / "ops"
    (ops / "helpers").mkdir(parents=True)
    (ops / "myop.py").write_text("import helpers\n\ndef op(images, generator):\n    return images\n")
    (ops / "helpers" / "__init__.py").write_text("from helpers.sub import g\n")
    (ops / "helpers" / "sub.py").write_text("g = 1\n")
    path = ops / "myop.py"
    before = op_sources.code_hash(path, path.read_bytes())
    (tmp_path / "linked").symlink_to(ops)
    assert op_sources.code_hash(tmp_path / "linked" / "myop.py", path.read_bytes()) == before
    (ops / "helpers" / "sub.py").write_text("g = 2\n")
    assert op_sources.code_hash(path, path.read_bytes()) != before

    site = tmp_path / "site"
    (site / "mypkg").mkdir(parents=True)
    (site / "fakelib").mkdir()
    (site / "fakelib" / "__init__.py").write_text("x = 1\n")
    (site / "mypkg" / "__init__.py").write_text("")
    (site / "mypkg" / "util.py").write_text("y = 1\n")
    (site / "mypkg" / "ops.py").write_text("import fakelib\nfrom mypkg import util\n\ndef op(images, generator):\n"
                                           "    return images\n")
    installed = site / "mypkg" / "ops.py"
    assert op_sources._local_imports(installed.resolve(), installed.read_bytes(), site.resolve(), "mypkg") == {
        (site / "mypkg" / "util.py").resolve(), (site / "mypkg" / "__init__.py").resolve()}
