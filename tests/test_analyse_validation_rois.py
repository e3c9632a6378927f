"""scripts/analyse_validation_rois.py scores real weights on real validation ROIs (the bundle's
sample lesions): per model, per box kind, at several thresholds, beside the ellipse baseline; the
probabilities are cached, and an ensemble of a model with itself is that model."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "analyse_validation_rois.py"
UNET = f"unet={REPO / 'monai_bundle' / 'models' / 'unet.pt'}"
SAMPLE_ROIS = REPO / "monai_bundle" / "sample_data" / "rois"


def analyse(*args: str, cache: Path) -> str:
    command = [sys.executable, str(SCRIPT), *args, "--dataset-dir", str(SAMPLE_ROIS), "--cache", str(cache)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rows(table: str, name: str) -> dict[str, list[float]]:
    """The numeric cells of the rows whose model column starts with ``name``, by box kind."""
    found = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 10 and cells[0].startswith(name):
            found[cells[1]] = [float(c) for c in cells[2:9]]
    return found


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[str, Path]:
    cache = tmp_path_factory.mktemp("validation_rois")
    return analyse(UNET, cache=cache), cache


def test_the_shipped_unet_outlines_the_sample_masses_better_than_a_fill(first_run):
    unet = rows(first_run[0], "unet")
    assert set(unet) == {"tight", "loose"}
    dice_at_half = unet["tight"][2]
    assert 0.6 < dice_at_half <= 1.0
    assert unet["loose"][2] < dice_at_half + 0.05  # loose boxes are not easier


def test_the_ellipse_baseline_is_scored_for_both_kinds_of_box(first_run):
    ellipse = rows(first_run[0], "filled ellipse inside the box")
    assert set(ellipse) == {"tight", "loose"}
    assert 0.3 < ellipse["tight"][2] < 1.0
    assert ellipse["loose"][4] > 2 * ellipse["tight"][4]  # area ratio: the ellipse of a loose box overshoots the mass


def test_probabilities_are_cached_per_box_kind_and_an_ensemble_of_one_model_twice_is_that_model(first_run):
    table, cache = first_run
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 2 and all(np.load(f)["prob"].shape[1:] == (256, 256) for f in files)
    stamps = [f.stat().st_mtime_ns for f in files]
    again = analyse(UNET, UNET, cache=cache)
    assert [f.stat().st_mtime_ns for f in sorted(cache.glob("*.npz"))] == stamps  # read, not recomputed
    assert rows(again, "mean probability of the 2 models") == rows(table, "unet")
    assert again.count("| +0.0 (+0.0 to +0.0) |") == 4  # the second UNet and the ensemble, paired with the first, per box kind


def test_a_weights_file_of_another_network_is_refused_in_one_line(tmp_path):
    command = [sys.executable, str(SCRIPT), f"connected_resunets={REPO / 'monai_bundle' / 'models' / 'unet.pt'}",
               "--dataset-dir", str(SAMPLE_ROIS), "--cache", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode != 0
    assert "unet.pt: not weights of" in done.stderr.strip().splitlines()[-1]


def test_the_box_ellipse_fills_the_box_in_roi_pixels():
    spec = importlib.util.spec_from_file_location("analyse_validation_rois", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # a 100 x 50 box in a 200 x 100 crop, resized to 256 x 256: the ellipse spans half of each side
    ellipse = module.box_ellipse([150, 125, 250, 175], [100, 100, 300, 200], 0.0, (256, 256))
    rows_, cols = np.nonzero(ellipse)
    assert (cols.min(), cols.max(), rows_.min(), rows_.max()) == (64, 191, 64, 191)
    assert ellipse.sum() == pytest.approx(np.pi / 4 * 128 * 128, rel=0.02)
    loose = module.box_ellipse([150, 125, 250, 175], [100, 100, 300, 200], 0.3, (256, 256))
    assert loose.sum() == pytest.approx(1.6**2 * ellipse.sum(), rel=0.03)
