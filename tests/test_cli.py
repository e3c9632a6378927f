"""The command line: segment and demo, and one-line errors for what users get wrong."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from connected_unets.cli import main
from connected_unets.io import load_image

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
IMAGE = BUNDLE / "sample_data" / "images" / "P60_L_DM_MLO.jpg"


def test_segment_writes_a_png_mask_of_the_image_size(random_weights, tmp_path, capsys):
    out = tmp_path / "mask.png"
    assert main(["segment", str(IMAGE), "--box", "175", "142", "302", "267", "--out", str(out), "--weights", str(random_weights), "--device", "cpu"]) == 0
    mask = np.array(Image.open(out))
    assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 255}
    assert str(out) in capsys.readouterr().out


def test_segment_writes_nifti_with_the_mask_values(random_weights, tmp_path):
    out = tmp_path / "mask.nii.gz"
    assert main(["segment", str(IMAGE), "--box", "175", "142", "302", "267", "--out", str(out), "--weights", str(random_weights), "--device", "cpu"]) == 0
    assert load_image(out).array.shape == (512, 512)


@pytest.mark.parametrize(
    "args, message",
    [
        (["segment", "/no/such.png", "--box", "1", "2", "30", "40", "--out", "m.png"], "/no/such.png: file not found"),
        (["segment", str(IMAGE), "--box", "600", "10", "700", "90", "--out", "m.png"], "lies outside the image"),
        (["segment", str(IMAGE), "--box", "10", "10", "90", "90", "--out", "m.png", "--weights", "/no/w.pt"], "/no/w.pt: weights not found"),

    ],
)
def test_user_errors_are_one_line_on_stderr_with_status_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["segment", str(IMAGE), "--box", "10", "10", "90", "90", "--out", "m.png", "--threshold", "1.5"],
         "argument --threshold: 1.5 is not strictly between 0 and 1"),
        (["evaluate", "--threshold", "0"], "argument --threshold: 0 is not strictly between 0 and 1"),
        (["evaluate", "--box-extra-margin", "-0.7"], "argument --box-extra-margin: -0.7 is not a finite number >= 0"),
        (["evaluate", "--box-extra-margin", "nan"], "argument --box-extra-margin: nan is not a finite number >= 0"),
    ],
)  # fmt: skip
def test_out_of_range_options_are_refused_before_any_work(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_demo_writes_masks_overlays_and_a_dice_table(random_weights, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--weights", str(random_weights), "--device", "cpu"]) == 0
    samples = json.loads((BUNDLE / "sample_data" / "samples.json").read_text())
    stems = [Path(s["image"]).stem for s in samples]
    for stem in stems:
        assert (tmp_path / f"{stem}_mask.png").is_file()
        overlay = Image.open(tmp_path / f"{stem}_overlay.png")
        assert overlay.size == (1024, 512)  # image and overlay side by side
    rows = list(csv.DictReader((tmp_path / "dice.csv").open()))
    assert [Path(r["image"]).stem for r in rows] == stems
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    printed = capsys.readouterr().out
    assert "mean" in printed and all(stem in printed for stem in stems)
