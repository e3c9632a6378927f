"""The weights that ship with the bundle: loadable as MONAI expects, and useful on unseen patients."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from connected_unets.bundle import shipped_networks, weights_file
from connected_unets.inference import Segmenter
from connected_unets.io import load_image, load_mask
from connected_unets.metrics import dice
from connected_unets.networks import get_network

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
SHIPPED = {name: weights_file(name) for name in shipped_networks()}  # the catalogue's weights that ship


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_are_a_plain_state_dict_with_exactly_the_network_keys(name):
    state = torch.load(SHIPPED[name], map_location="cpu", weights_only=True)
    assert list(state) == list(get_network(name, in_channels=3, out_channels=1).state_dict())
    get_network(name, in_channels=3, out_channels=1).load_state_dict(state, strict=True)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_record_their_validation_score(name):
    record = json.loads(SHIPPED[name].with_suffix(".json").read_text())
    assert record["metric"] == "val_mean_dice" and 0.0 < record["score"] <= 1.0 and record["epoch"] >= 1


def test_the_shipped_model_beats_filling_the_box_on_unseen_patients():
    """The sample images belong to validation patients; a useless model would do no better than
    declaring every pixel of each lesion box a mass."""
    segmenter = Segmenter.from_bundle(device="cpu")
    samples = json.loads((BUNDLE / "sample_data" / "samples.json").read_text())
    model_dice, box_dice = [], []
    for sample in samples:
        image = load_image(BUNDLE / "sample_data" / sample["image"]).array
        reference = load_mask(BUNDLE / "sample_data" / sample["mask"])
        filled = np.zeros(reference.shape, bool)
        for x0, y0, x1, y1 in sample["boxes"]:
            filled[y0:y1, x0:x1] = True
        model_dice.append(dice(segmenter.segment(image, sample["boxes"]), reference))
        box_dice.append(dice(filled, reference))
    assert np.mean(model_dice) > np.mean(box_dice) + 0.05
