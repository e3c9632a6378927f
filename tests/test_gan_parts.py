"""Specification of the CycleGAN's parts outside the networks: the image pool, the unpaired data,
one training step, the value range and scale the GAN sees ROIs at, translation and its measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from connected_unets.gan_training import LOSS_KEYS, CycleGANStep, ImagePool, UnpairedDataset
from connected_unets.io import LoadedImage
from connected_unets.networks import PatchGANDiscriminator, ResnetGenerator
from connected_unets.synthesis import translate
from connected_unets.transforms import from_gan_range, gan_range, gan_view_shape
from connected_unets.translation_quality import cycle_error, fid, ssim

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def picture(array: np.ndarray, value_range: tuple[float, float] | None) -> LoadedImage:
    return LoadedImage(array.astype(np.float32), (1.0, 1.0), (0.0, 0.0), None, "L", value_range=value_range)


# --------------------------------------------------------------------------- what the GAN sees


def test_stored_8_and_16_bit_values_map_to_minus_one_to_one_by_their_type_range():
    assert gan_range(picture(np.array([[0, 255]]), (0.0, 255.0))).tolist() == [[-1.0, 1.0]]
    assert gan_range(picture(np.array([[0, 65535]]), (0.0, 65535.0))).tolist() == [[-1.0, 1.0]]
    assert gan_range(picture(np.array([[10, 20]]), None)).tolist() == [[-1.0, 1.0]]  # no type range: the image's own
    assert from_gan_range(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]


def test_rois_are_seen_at_their_own_size_unless_smaller_than_the_crop():
    assert gan_view_shape((300, 200), 128) == (300, 200)
    assert gan_view_shape((64, 100), 128) == (128, 200)
    assert gan_view_shape((26, 26), 32) == (32, 32)


def test_translation_gives_back_images_of_the_source_size():
    torch.manual_seed(0)
    gen_ab, gen_ba = ResnetGenerator(filters=4, residual_blocks=1), ResnetGenerator(filters=4, residual_blocks=1)
    for shape in ((26, 30), (57, 41), (64, 64)):
        fake, back = translate(np.zeros(shape, np.float32), gen_ab, gen_ba, min_size=32)
        assert fake.shape == back.shape == shape
        assert fake.min() >= -1 and fake.max() <= 1


# --------------------------------------------------------------------------- pool, data, step


def test_the_pool_fills_first_then_swaps_half_of_the_time():
    pool = ImagePool(size=2, seed=0)
    first, second = torch.full((1, 1, 2, 2), 1.0), torch.full((1, 1, 2, 2), 2.0)
    assert torch.equal(pool.query(first), first) and torch.equal(pool.query(second), second)
    answers = [float(pool.query(torch.full((1, 1, 2, 2), float(v)))[0, 0, 0, 0]) for v in range(3, 43)]
    older = sum(answer < value for answer, value in zip(answers, range(3, 43)))
    assert 10 < older < 30  # about half judged an older image


def test_the_pool_is_saved_and_restored():
    pool = ImagePool(size=3, seed=0)
    for v in range(3):
        pool.query(torch.full((1, 1, 2, 2), float(v)))
    restored = ImagePool(size=3, seed=0)
    restored.load_state_dict(pool.state_dict())
    assert [float(image.mean()) for image in restored.images] == [0.0, 1.0, 2.0]
    assert ImagePool(size=0).query(torch.ones(2, 1, 2, 2)).shape == (2, 1, 2, 2)


def test_an_epoch_of_unpaired_data_pairs_every_a_image_with_a_random_b_image():
    domain_a = [{"image": torch.full((1, 2, 2), float(i))} for i in range(5)]
    domain_b = [{"image": torch.full((1, 2, 2), 100.0 + i)} for i in range(3)]
    data = UnpairedDataset(domain_a, domain_b, seed=0)
    assert len(data) == 5
    assert [float(data[i]["a"].mean()) for i in range(5)] == [0, 1, 2, 3, 4]
    assert all(100 <= float(data[i]["b"].mean()) <= 102 for i in range(5))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_step_updates_all_four_networks_and_reports_every_loss(precision):
    torch.manual_seed(0)
    gens = [ResnetGenerator(filters=4, residual_blocks=1) for _ in range(2)]
    discs = [PatchGANDiscriminator(filters=4) for _ in range(2)]
    before = [[p.detach().clone() for p in n.parameters()] for n in (*gens, *discs)]
    opt_g = torch.optim.Adam([p for g in gens for p in g.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([p for d in discs for p in d.parameters()], lr=2e-4, betas=(0.5, 0.999))
    step = CycleGANStep(*gens, *discs, opt_g, opt_d, ImagePool(2), ImagePool(2), precision=precision)
    losses = step(None, {"a": torch.rand(1, 1, 32, 32) * 2 - 1, "b": torch.rand(1, 1, 32, 32) * 2 - 1})
    assert set(losses) == set(LOSS_KEYS) and all(np.isfinite(v) for v in losses.values())
    assert losses["loss"] == pytest.approx(losses["g_adversarial"] + 10 * losses["g_cycle"] + 5 * losses["g_identity"], rel=1e-4)
    for network, old in zip((*gens, *discs), before):
        assert any(not torch.equal(p, q) for p, q in zip(network.parameters(), old)), type(network).__name__
    assert all(p.requires_grad for d in discs for p in d.parameters())


def test_the_training_config_shows_the_losses_in_a_progress_bar_unless_progress_is_off(capsys):
    from ignite.engine import Engine

    from connected_unets.bundle import open_config
    from connected_unets.handlers import LossProgressBar

    bar = open_config(["cyclegan_train.yaml"]).get_parsed_content("progress_bar")
    assert isinstance(bar, LossProgressBar) and set(bar.keys) <= set(LOSS_KEYS)
    engine = Engine(lambda engine, batch: dict.fromkeys(LOSS_KEYS, 0.25))
    bar.attach(engine)
    engine.run(range(3), max_epochs=1)
    shown = capsys.readouterr().err
    assert all(f"{key}=0.25" in shown for key in bar.keys), shown
    assert open_config(["cyclegan_train.yaml"], overrides={"progress": False}).get_parsed_content("progress_bar") is None


# --------------------------------------------------------------------------- measures


def test_ssim_is_one_for_the_same_picture_and_lower_for_another():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (40, 40))
    assert ssim(image, image) == pytest.approx(1.0)
    assert ssim(image, rng.uniform(-1, 1, (40, 40))) < 0.2


def test_cycle_error_is_a_fraction_of_the_value_range():
    assert cycle_error(np.full((4, 4), -1.0), np.full((4, 4), 1.0)) == pytest.approx(1.0)
    assert cycle_error(np.zeros((4, 4)), np.zeros((4, 4))) == 0.0


def test_fid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = (torch.as_tensor(rng.normal(size=(400, 8))) for _ in range(2))
    assert fid(a, b) < 0.5
    assert fid(a + 3.0, b) > 8 * 3.0**2 * 0.9
