"""The fast inference path (BatchNorm folded, channels_last) gives the plain network's outputs."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from connected_unets.fast import (
    FastNetwork,
    ShiftedReLU,
    fast_if_equivalent,
    fold_batch_norm,
    max_abs_difference,
    optimize_for_inference,
)
from connected_unets import fast_verdicts
from connected_unets.bundle import open_config, shipped_networks, weights_file
from connected_unets.inference import Segmenter
from connected_unets.io import load_image, load_mask
from connected_unets.networks import NETWORKS, get_network

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
SAMPLES = json.loads((BUNDLE / "sample_data" / "samples.json").read_text())
SHIPPED = {name: weights_file(name) for name in shipped_networks()}  # the catalogue's weights that ship
# pre-activation BNs (BN -> ReLU -> Conv at the start of each residual path) have no conv before them
UNFOLDABLE_BN = {"connected_resunets": 16}
TOLERANCE = 1e-4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trained_like(name: str, seed: int = 0) -> nn.Module:
    """A network with random weights AND random BatchNorm statistics/affines (positive scales, as
    training leaves them), in eval mode: Keras-initialised BNs (mean 0, var 1) would make the fold
    nearly trivial."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    network = get_network(name, in_channels=3, out_channels=1)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator))
            module.weight.data.copy_(0.5 + torch.rand(n, generator=generator))
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
    return network.eval()


@pytest.mark.parametrize("name", list(NETWORKS))
def test_fast_path_matches_the_plain_network_for_all_six(name):
    network = trained_like(name)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    fast = optimize_for_inference(network, "cpu")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        logits, fast_logits = network(x), fast(x)
    assert fast_logits.shape == logits.shape
    assert (logits - fast_logits).abs().max() < 1e-3
    assert max_abs_difference(network, fast, x) < TOLERANCE
    left = sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert left == UNFOLDABLE_BN.get(name, 0)
    # the caller's network is untouched (the Segmenter may keep using it)
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in network.modules()) > left


def test_conv_relu_bn_units_with_a_non_positive_scale_are_left_alone():
    network = trained_like("unet")
    bn = network.encoder.levels[0][0][2]
    assert isinstance(bn, nn.BatchNorm2d)
    bn.weight.data[0] = -0.7  # a * relu(z) != relu(a * z) for a < 0
    fast = optimize_for_inference(network, "cpu")
    unit = fast.network.encoder.levels[0][0]
    assert isinstance(unit[2], nn.BatchNorm2d) and isinstance(unit[1], nn.ReLU)
    assert isinstance(fast.network.encoder.levels[0][1][1], ShiftedReLU)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert max_abs_difference(network, fast, x) < TOLERANCE


def test_folding_needs_eval_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norm(get_network("unet", in_channels=3).train())


def test_an_inexact_fast_path_falls_back_to_the_plain_network(caplog):
    network = trained_like("resunet")
    with caplog.at_level(logging.WARNING, logger="connected_unets.fast"):
        chosen = fast_if_equivalent(network, "cpu", tolerance=-1.0)  # no difference can pass
    assert chosen is network and not chosen.training
    assert "using the plain network" in caplog.text
    assert isinstance(fast_if_equivalent(network, "cpu"), FastNetwork)


def _saved(network, path):
    torch.save(network.state_dict(), path)
    return path


def test_a_remembered_verdict_is_taken_instead_of_probing(tmp_path, monkeypatch):
    """The probe's measured difference is kept per weights, code and machine; the next load takes it."""
    monkeypatch.setenv(fast_verdicts.CACHE_ENV, str(tmp_path / "cache"))
    network = trained_like("resunet")
    key = fast_verdicts.verdict_key(_saved(network, tmp_path / "weights.pt"), network, "cpu")
    assert isinstance(fast_if_equivalent(network, "cpu", key=key), FastNetwork)
    measured = fast_verdicts.recall(key)
    assert measured is not None and 0 <= measured <= 1e-4
    fast_verdicts.remember(key, 1.0)  # a record saying the fast copy differs: it must be believed, not re-probed
    assert fast_if_equivalent(network, "cpu", key=key) is network
    assert json.loads((tmp_path / "cache" / "fast_path.json").read_text()) == {key: 1.0}


def test_the_key_names_the_weights_bytes_not_their_path(tmp_path):
    network = trained_like("resunet")
    first = fast_verdicts.verdict_key(_saved(network, tmp_path / "a.pt"), network, "cpu")
    shutil.copy(tmp_path / "a.pt", tmp_path / "copy.pt")  # (torch.save writes the file's name into it)
    assert fast_verdicts.verdict_key(tmp_path / "copy.pt", network, "cpu") == first
    with torch.no_grad():
        next(network.parameters()).add_(1.0)
    assert fast_verdicts.verdict_key(_saved(network, tmp_path / "c.pt"), network, "cpu") != first


def test_a_cache_that_cannot_be_written_is_passed_over(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(fast_verdicts.CACHE_ENV, str(tmp_path / "file" / "cache"))  # a folder under a file
    network = trained_like("resunet")
    key = fast_verdicts.verdict_key(_saved(network, tmp_path / "weights.pt"), network, "cpu")
    assert isinstance(fast_if_equivalent(network, "cpu", key=key), FastNetwork)
    assert fast_verdicts.recall(key) is None


def test_loading_the_shipped_model_twice_probes_once(tmp_path, monkeypatch):
    monkeypatch.setenv(fast_verdicts.CACHE_ENV, str(tmp_path))
    for _ in range(2):
        assert isinstance(Segmenter.from_bundle(device="cpu").network, FastNetwork)
    verdicts = json.loads((tmp_path / "fast_path.json").read_text())
    assert len(verdicts) == 1 and 0 <= next(iter(verdicts.values())) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_weights_give_identical_masks_on_the_sample_rois(name):
    """Both shipped models, every sample image with all its boxes (one batch per image):
    probabilities within 1e-4 and the Segmenter's masks pixel-identical with and without the fast
    path. The logits are taken from the very calls that produce the masks: every pass, the refinement's
    (boxes re-cropped round a first mask) included."""
    fast = Segmenter.from_bundle(model=name, device="cpu", fast=True)
    plain = Segmenter.from_bundle(model=name, device="cpu", fast=False)
    assert isinstance(fast.network, FastNetwork) and not isinstance(plain.network, FastNetwork)
    logits: dict[str, list[torch.Tensor]] = {"fast": [], "plain": []}
    hooks = [
        segmenter.network.register_forward_hook(lambda module, args, out, key=key: logits[key].append(out.float()))
        for key, segmenter in (("fast", fast), ("plain", plain))
    ]
    try:
        for sample in SAMPLES:
            image = load_image(BUNDLE / "sample_data" / sample["image"]).array
            for calls in logits.values():
                calls.clear()
            fast_masks = fast.segment_each(image, sample["boxes"])
            plain_masks = plain.segment_each(image, sample["boxes"])
            assert len(logits["fast"]) == len(logits["plain"]) >= 1, sample["image"]
            assert logits["fast"][0].shape[0] == len(sample["boxes"]), sample["image"]
            for fast_out, plain_out in zip(logits["fast"], logits["plain"]):
                difference = (torch.sigmoid(fast_out) - torch.sigmoid(plain_out)).abs().max()
                assert fast_out.shape == plain_out.shape and difference < TOLERANCE, sample["image"]
            for fast_mask, plain_mask in zip(fast_masks, plain_masks):
                np.testing.assert_array_equal(fast_mask, plain_mask)
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.parametrize("fast", [True, False])
def test_monai_bundle_inference_runs_the_fast_copy_only_when_asked(fast, tmp_path):
    """inference.yaml's segmenter runs the fast copy only with ``fast: true``, and the masks that
    ``monai.bundle run`` writes are the Python API's: the bundle and the front doors run one Segmenter."""
    item = next(s for s in SAMPLES if "P304" in s["image"])
    image_path = BUNDLE / "sample_data" / item["image"]
    parser = open_config(["inference.yaml"], BUNDLE)
    parser.update({
        "network_name": "unet", "device": torch.device("cpu"), "fast": fast,
        "output_dir": str(tmp_path), "datalist": [{"image": str(image_path), "boxes": item["boxes"]}],
    })  # fmt: skip
    parser.get_parsed_content("run")
    assert isinstance(parser.get_parsed_content("segmenter").network, FastNetwork) is fast
    written = load_mask(tmp_path / f"{image_path.stem}_mask.png")
    segmenter = Segmenter.from_bundle(model="unet", device="cpu", fast=fast)
    np.testing.assert_array_equal(written, segmenter.segment(load_image(image_path).array, item["boxes"]).astype(bool))
    assert written.any()
