"""A wheel install (not editable) finds its configs, weights and sample data: the bundle travels as
the data package ``connected_unets_bundle`` (pyproject.toml; ``connected_unets.bundle.bundle_dir``).

The wheel goes into a fresh virtualenv outside the repository; its dependencies come from this
test's environment through a plain path entry (no ``.pth`` processing, so this environment's
editable ``connected_unets`` stays out of sight), and the commands run from another folder.
"""

import json
import site
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from connected_unets.io import load_mask

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "monai_bundle" / "sample_data"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"), str(REPO)], check=True, capture_output=True, timeout=600)
    (wheel,) = (root / "dist").glob("connected_unets-*.whl")
    venv.create(root / "env", with_pip=False)
    env_python = root / "env" / "bin" / "python"
    target = subprocess.run([str(env_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", target, str(wheel)], check=True, capture_output=True, timeout=600)
    (Path(target) / "zz_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return root


def run(env: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    code = "import sys; from connected_unets.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([str(env / "env" / "bin" / "python"), "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_installed_package_is_the_wheel_and_its_bundle_is_the_data_package(wheel_env, tmp_path):
    code = "import connected_unets, connected_unets.bundle as b; print(connected_unets.__file__); print(b.bundle_dir())"
    out = subprocess.run([str(wheel_env / "env" / "bin" / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert str(wheel_env / "env") in out[0] and str(REPO) not in out[0]
    assert out[1].endswith("connected_unets_bundle") and str(REPO) not in out[1]


def test_segment_from_another_folder_gives_the_source_trees_mask(wheel_env, tmp_path):
    sample = json.loads((SAMPLE / "samples.json").read_text())[0]
    box = [str(v) for v in sample["boxes"][0]]
    image = SAMPLE / sample["image"]
    done = run(wheel_env, "segment", str(image), "--box", *box, "--out", "mask.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from connected_unets.cli import main

    assert main(["segment", str(image), "--box", *box, "--out", str(tmp_path / "reference.png")]) == 0
    np.testing.assert_array_equal(load_mask(tmp_path / "mask.png"), load_mask(tmp_path / "reference.png"))


def test_demo_from_another_folder_runs_on_the_installed_sample(wheel_env, tmp_path):
    done = run(wheel_env, "demo", "--out", "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "demo").glob("*_mask.png"))) == len(json.loads((SAMPLE / "samples.json").read_text()))
    assert "mean" in done.stdout
