"""A wheel install (not editable) runs as a user runs it: the ``connected-unets`` console script of a
fresh virtualenv, from a folder outside the repository, finds the configs, the shipped weights and
the sample data in the data package ``connected_unets_bundle`` (pyproject.toml;
``connected_unets.bundle.bundle_dir``).

How: the wheel is built from a copy of the working tree (git's tracked and not-ignored files, so
no stale ``build/`` leftovers travel), a virtualenv is made outside the repository with
``python -m venv``, and the wheel goes into it with ``pip install --no-deps`` (which writes
``bin/connected-unets``). Its dependencies are borrowed from this test's environment (the project's
venv) through a ``.pth`` file listing that environment's site-packages: installing torch, MONAI
and the rest again needs the package index (gigabytes), out of reach offline. A ``.pth`` line only
adds its folder to ``sys.path``; the ``.pth`` files inside that folder are not processed, so the
project venv's editable ``connected_unets`` stays out of sight, and the virtualenv's own
site-packages (the wheel) comes first on ``sys.path``.
"""

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from connected_unets.io import load_mask

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "monai_bundle" / "sample_data"
SHIPPED = REPO / "monai_bundle" / "models"

pytestmark = pytest.mark.slow


def _outside_repository(path: Path) -> Path:
    path = path.resolve()
    assert REPO != path and REPO not in path.parents, f"{path} lies inside the repository"
    return path


def _user_environment() -> dict[str, str]:
    """This environment without what would lead the installed commands to the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONNECTED_UNETS_BUNDLE", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO)))
    return env


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> Path:
    """The virtualenv with the wheel installed; ``<it>/purelib`` holds the path of its site-packages."""
    root = _outside_repository(tmp_path_factory.mktemp("wheel"))
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, check=True, capture_output=True
    ).stdout.decode().split("\0")
    tree = root / "tree"
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a file deleted in the working tree is still listed by --cached
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(root / "dist"), str(tree)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = (root / "dist").glob("connected_unets-*.whl")
    env = root / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, capture_output=True, timeout=300)
    subprocess.run(
        [str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
        check=True, capture_output=True, timeout=600, env=_user_environment(),
    )  # fmt: skip
    purelib = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "zz_borrowed_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    (env / "purelib").write_text(purelib)
    return env


def connected_unets(env: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed console script, as a user types it."""
    return subprocess.run([str(env / "bin" / "connected-unets"), *args], cwd=_outside_repository(cwd), env=_user_environment(), capture_output=True, text=True, timeout=600)


def test_the_console_script_runs_the_wheel_and_finds_the_bundle_in_its_package_data(wheel_env, tmp_path):
    purelib = Path((wheel_env / "purelib").read_text())
    assert (wheel_env / "bin" / "connected-unets").is_file()
    code = "import connected_unets; print(connected_unets.__file__)"
    where = subprocess.run([str(wheel_env / "bin" / "python"), "-c", code], cwd=tmp_path, env=_user_environment(), capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(purelib), where.stdout
    done = connected_unets(wheel_env, "models", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"networks of the bundle {purelib / 'connected_unets_bundle'} " in done.stdout, done.stdout
    assert "shipped: models/model.pt" in done.stdout


def test_segment_from_another_folder_writes_the_repository_clis_mask(wheel_env, tmp_path):
    purelib = Path((wheel_env / "purelib").read_text())
    sample = json.loads((SAMPLE / "samples.json").read_text())[0]
    box = [str(v) for v in sample["boxes"][0]]
    image = SAMPLE / sample["image"]
    done = connected_unets(wheel_env, "segment", str(image), "--box", *box, "--out", "mask.png", "--verbose", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    installed_weights = purelib / "connected_unets_bundle" / "models" / "model.pt"
    assert f"{installed_weights} on " in done.stderr, done.stderr  # the package data's weights, not the repository's
    assert (tmp_path / "mask.png").is_file()
    from connected_unets.cli import main

    assert main(["segment", str(image), "--box", *box, "--out", str(tmp_path / "reference.png")]) == 0
    if installed_weights.read_bytes() != (SHIPPED / "model.pt").read_bytes():
        pytest.skip("the repository's model.pt changed while the test ran (a training job shipped new weights)")
    np.testing.assert_array_equal(load_mask(tmp_path / "mask.png"), load_mask(tmp_path / "reference.png"))


def test_demo_from_another_folder_runs_on_the_installed_sample(wheel_env, tmp_path):
    done = connected_unets(wheel_env, "demo", "--out", "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    samples = json.loads((SAMPLE / "samples.json").read_text())
    masks = sorted((tmp_path / "demo").glob("*_mask.png"))
    assert [m.name for m in masks] == sorted(f"{Path(s['image']).stem}_mask.png" for s in samples)
    assert all(load_mask(m).any() for m in masks)
    assert (tmp_path / "demo" / "dice.csv").is_file()
    assert "mean" in done.stdout
