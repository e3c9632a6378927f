"""Specification of CycleGAN synthesis (issue 16, docs/synthesis.md): the CESM source domain
prepared without DM validation patients, a CycleGAN trained and resumed through
``python -m monai.bundle run`` (configs/cyclegan_train.yaml), ``connected-unets synthesize``
carrying the masks over unchanged, train.yaml adding synthetic items to the training split only,
and one-line refusals with nothing half-written.

Real data: a few CDD-CESM CESM images of ``data/cdd_cesm_cm`` in the datasets' folder
(``$CONNECTED_UNETS_SHARED``, tests/conftest.py; domain A; skipped without it) and the bundle's
sample DM ROIs (domain B; its validation patients P60 and P72 are the held-out ones). The GAN is
tiny (4 filters, 1 residual block, 32 x 32 crops, 3 steps an epoch): these tests check the
machinery, not the translation.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import BUNDLE, REPO, SAMPLE_DATA, SHARED
from connected_unets.data.domains import held_out_patients, read_domain
from connected_unets.gan_training import LOSS_KEYS, STATE_KEYS, LinearDecay, check_setup, lr_scheduler, read_domains
from connected_unets.preflight import SetupError
from connected_unets.synthesis import check_synthetic, with_synthetic
from tiny_training import RunFolders, train_args

DM_ROIS = SAMPLE_DATA / "rois"  # training P264, P304, P206; validation P60, P72
CESM = SHARED / "data" / "cdd_cesm_cm"
# CESM mass images: two of DM training patients, one of a patient without DM ROIs here, one of a DM validation patient
CESM_FILES = ("P264_L_CM_CC.jpg", "P264_L_CM_MLO.jpg", "P206_L_CM_CC.jpg", "P102_R_CM_CC.jpg", "P72_R_CM_CC.jpg")
GAN_CONFIGS = "['configs/common.yaml','configs/cyclegan_train.yaml']"
TINY_GAN = {"crop_size": 32, "gan_filters": 4, "residual_blocks": 1, "disc_filters": 4, "epoch_length": 3, "pool_size": 2, "progress": False}
STATE = "cyclegan_train_state.pt"
LOG = "cyclegan_train_log.csv"

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not (CESM / "manifest.csv").is_file(), reason=f"{CESM} not available"),
]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gan_args(output_dir: Path, domain_a: Path, domain_b: Path, epochs: int, **overrides: object) -> list[str]:
    """``monai.bundle run`` of cyclegan_train.yaml at the tiny sizes, ``overrides`` replacing any of them."""
    values = {**TINY_GAN, "domain_a": domain_a, "domain_b": domain_b, "output_dir": output_dir, "epochs": epochs, **overrides}
    return ["run", "--config_file", GAN_CONFIGS, *(part for key, value in values.items() for part in (f"--{key}", str(value)))]


def log_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / LOG).open(newline="") as f:
        return list(csv.DictReader(f))


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def cesm(tmp_path_factory) -> Path:
    """The CESM domain prepared by scripts/prepare_cyclegan_domains.py from a few real CESM images
    (a copy of their manifest rows, images and masks), against the sample DM datalist."""
    root = tmp_path_factory.mktemp("cesm")
    source = root / "cdd_cesm_cm"
    for folder in ("images", "masks_bin"):
        (source / folder).mkdir(parents=True)
    with (CESM / "manifest.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [row for row in reader if row["file"] in CESM_FILES]
        fields = reader.fieldnames
    with (source / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    for name in CESM_FILES:
        shutil.copy(CESM / "images" / name, source / "images" / name)
        shutil.copy(CESM / "masks_bin" / f"{Path(name).stem}.png", source / "masks_bin" / f"{Path(name).stem}.png")
    out = root / "prepared"
    assert _script("prepare_cyclegan_domains").main(["--cesm", str(source), "--dm", str(DM_ROIS), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def trained(cesm, tmp_path_factory, run_bundle) -> Path:
    """A tiny CycleGAN trained for 2 epochs of 3 steps (CESM -> DM)."""
    out = tmp_path_factory.mktemp("gan") / "run"
    run_bundle(gan_args(out, cesm, DM_ROIS, 2))
    return out


@pytest.fixture(scope="module")
def synthetic(trained, cesm, tmp_path_factory, run_bundle) -> Path:
    """``connected-unets synthesize`` of every CESM ROI with the tiny CycleGAN."""
    out = tmp_path_factory.mktemp("synthetic") / "cesm_to_dm"
    run_bundle(["synthesize", "--from", str(cesm), "--out", str(out), "--weights", str(trained / STATE), "--device", "cpu"], module="connected_unets.cli")
    return out


# --------------------------------------------------------------------------- the CESM domain


def test_the_cesm_domain_holds_no_patient_of_the_dm_validation_split(cesm):
    held_out = held_out_patients(DM_ROIS)
    assert set(held_out) == {"P60", "P72"}
    datalist = json.loads((cesm / "datalist.json").read_text())
    used = {item["patient"] for item in datalist["training"]}
    assert used and not used & set(held_out)
    assert [skip for skip in datalist["skipped"] if skip["kind"] == "held-out patient"], "the P72 image must be left out, and say so"


def test_the_cesm_domain_is_prepared_like_the_dm_data_all_in_training(cesm):
    datalist = json.loads((cesm / "datalist.json").read_text())
    assert set(datalist) == {"training", "skipped"}
    for item in datalist["training"]:
        assert {"image", "label", "box", "patient", "lesion"} <= set(item)
        assert (cesm / item["image"]).is_file() and (cesm / item["label"]).is_file()


# --------------------------------------------------------------------------- training


def test_a_few_real_iterations_change_the_losses(trained):
    rows = log_rows(trained)
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    for key in LOSS_KEYS:
        values = [float(row[key]) for row in rows]
        assert all(math.isfinite(v) for v in values), key
    for key in ("loss", "g_cycle", "d_a", "d_b"):
        assert len({row[key] for row in rows}) > 1, f"{key} never changed"


def test_the_state_holds_all_four_networks_both_optimisers_and_the_sizes(trained):
    state = load(trained / STATE)
    assert set(STATE_KEYS) | {"pool_a", "pool_b", "settings"} <= set(state)
    # ignite saves the iteration (the epoch is iteration // epoch_length on loading): 2 epochs of 3 steps
    assert dict(state["trainer"]) == {"epoch_length": 3, "iteration": 6, "max_epochs": 2}
    assert all(int(s["step"]) == 6 for optimizer in ("opt_g", "opt_d") for s in state[optimizer]["state"].values())
    assert state["settings"] == {"crop_size": 32, "gan_filters": 4, "residual_blocks": 1, "disc_filters": 4, "disc_layers": 3, "image_channels": 1}
    assert len(state["pool_a"]["images"]) == 2  # the pool of generated images is saved too (size 2 here)
    assert not [p for p in trained.iterdir() if p.name.startswith(".tmp-")]


def test_the_run_records_what_it_trained_on(trained):
    domains = json.loads((trained / "cyclegan_domains.json").read_text())
    assert len(domains["A"]) >= 3 and len(domains["B"]) == 5  # B: the sample's training split only
    run = json.loads((trained / "run.json").read_text())
    assert run["kind"] == "cyclegan_train" and run["data"]["files"] == len(domains["A"]) + len(domains["B"])


def test_an_interrupted_run_resumes_from_its_saved_epoch_and_the_curve_continues(trained, cesm, tmp_path, run_bundle):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = log_rows(run)
    with (run / LOG).open("a", newline="") as f:  # a run killed during epoch 3 logged a step it will redo
        csv.writer(f).writerow(["2026-01-01T00:00:00Z", 3, 7, *(["9.9"] * len(LOSS_KEYS)), "1.0", "1.0"])
    run_bundle(gan_args(run, cesm, DM_ROIS, 3))
    rows = log_rows(run)
    assert [int(row["iteration"]) for row in rows] == list(range(1, 10))
    assert rows[:6] == before  # the first two epochs are not redone
    state = load(run / STATE)
    assert dict(state["trainer"]) == {"epoch_length": 3, "iteration": 9, "max_epochs": 3}
    assert all(int(s["step"]) == 9 for s in state["opt_g"]["state"].values())


def test_linear_decay_keeps_the_rate_then_lowers_it_linearly_over_the_last_epochs():
    factor = LinearDecay(epochs=10, decay_epochs=4)
    assert [round(factor(done), 3) for done in range(10)] == [1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2]


def test_a_linear_decay_run_extended_on_resume_follows_the_new_schedule_not_the_saved_one():
    def scheduler(epochs: int):
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
        return optimizer, lr_scheduler(optimizer, "linear", epochs, decay_epochs=2)

    first_opt, first = scheduler(epochs=4)
    for _ in range(4):
        first_opt.step()
        first.step()
    assert first_opt.param_groups[0]["lr"] == pytest.approx(0.0)  # the first run decayed to 0
    extended_opt, extended = scheduler(epochs=8)  # resumed with --epochs 8
    extended_opt.load_state_dict(first_opt.state_dict())
    extended.load_state_dict(first.state_dict())
    rates = []  # the rate each of epochs 5-8 trains at, then the final one
    for _ in range(4):
        rates.append(round(extended_opt.param_groups[0]["lr"] / 2e-4, 3))
        extended_opt.step()
        extended.step()
    assert rates == [1.0, 1.0, 0.667, 0.333] and extended_opt.param_groups[0]["lr"] == pytest.approx(0.0)


def test_a_linear_decay_run_saves_its_schedules_with_the_state(cesm, tmp_path, run_bundle):
    run_bundle(gan_args(tmp_path / "run", cesm, DM_ROIS, 2, lr_schedule="linear", decay_epochs=1, epoch_length=1))
    state = load(tmp_path / "run" / STATE)
    assert state["sched_g"]["last_epoch"] == state["sched_d"]["last_epoch"] == 2
    assert state["opt_g"]["param_groups"][0]["initial_lr"] == pytest.approx(0.0002)
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(0.0)  # after the last epoch


# --------------------------------------------------------------------------- generation


def test_generate_writes_masks_identical_to_the_source_masks(synthetic, cesm):
    source = {Path(item["image"]).name: item for item in json.loads((cesm / "datalist.json").read_text())["training"]}
    translated = json.loads((synthetic / "datalist.json").read_text())["training"]
    assert len(translated) == len(source)
    for item in translated:
        original = source[Path(item["translated_from"]).name]
        assert (synthetic / item["label"]).read_bytes() == (cesm / original["label"]).read_bytes()
        with Image.open(synthetic / item["image"]) as image, Image.open(cesm / original["image"]) as before:
            assert image.size == before.size and image.mode == before.mode
        assert item["box"] == original["box"] and item["patient"] == original["patient"] and item["lesion"] == original["lesion"]


def test_every_translated_item_is_marked_synthetic(synthetic):
    datalist = json.loads((synthetic / "datalist.json").read_text())
    assert set(datalist) == {"training", "skipped"}
    assert all(item["synthetic"] is True for item in datalist["training"])


def test_generate_writes_the_per_roi_measures_and_an_example_grid(synthetic):
    with (synthetic / "translation.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(json.loads((synthetic / "datalist.json").read_text())["training"])
    assert all(-1 <= float(r["ssim"]) <= 1 and 0 <= float(r["cycle_mae"]) <= 1 for r in rows)
    with Image.open(synthetic / "examples.png") as grid:
        assert grid.format == "PNG" and grid.width > 300
    record = json.loads((synthetic / "synthesis.json").read_text())
    assert record["rois"] == len(rows) and record["min_size"] == 32  # the training's crop size, read from the weights

def test_the_quality_script_measures_structure_distance_and_the_segmenters_dice_on_real_rois(synthetic, cesm, tmp_path):
    out = tmp_path / "quality"
    argv = ["--source", str(cesm), "--synthetic", str(synthetic), "--reference", str(DM_ROIS), "--out", str(out), "--device", "cpu"]
    assert _script("synthesis_quality").main(argv) == 0
    record = json.loads((out / "quality.json").read_text())
    n = len(json.loads((cesm / "datalist.json").read_text())["training"])
    assert record["translation"]["ssim_source_vs_translated"]["n"] == record["translation"]["cycle_mae"]["n"] == n
    assert record["fid"]["n"] == {"source": n, "translated": n, "target_training": 5, "target_validation": 3}
    assert all(math.isfinite(value) and value >= 0 for value in record["fid"]["fid_vs_target_training"].values())
    dice = record["dice"]["margin 0"]
    assert all(0 <= dice[name]["dice"]["mean"] <= 1 for name in ("untranslated", "translated"))
    assert dice["difference"]["n"] == n  # the same lesions scored both ways, paired
    assert "not with Inception FID" in (out / "quality.md").read_text()  # said beside the figures


# --------------------------------------------------------------------------- joint training


def _parsed(overrides: dict, *names: str):
    from connected_unets.bundle import open_config, parsed

    parser = open_config(list(names), overrides={"dataset_dir": str(DM_ROIS), **overrides})
    return lambda key: parsed(parser, key)


def test_synthetic_items_reach_the_training_split_and_never_validation(synthetic):
    synthetic_datalist = str(synthetic / "datalist.json")
    n_synthetic = len(json.loads(Path(synthetic_datalist).read_text())["training"])
    train = _parsed({"synthetic_datalist": synthetic_datalist}, "train.yaml")
    training, validation = train("train#dataset#data"), train("validate#dataset#data")
    assert len(training) == 5 + n_synthetic and sum(item["synthetic"] for item in training) == n_synthetic
    assert not any(item.get("synthetic") for item in validation) and len(validation) == 3
    evaluate = _parsed({"synthetic_datalist": synthetic_datalist, "evaluate_split": "validation"}, "train.yaml", "evaluate.yaml")
    assert not any(item.get("synthetic") for item in evaluate("validate#dataset#data"))


def test_without_a_synthetic_datalist_training_is_the_datalists_own(synthetic):
    from monai.data import load_decathlon_datalist

    train = _parsed({}, "train.yaml")
    assert train("train#dataset#data") == load_decathlon_datalist(str(DM_ROIS / "datalist.json"), True, "training", str(DM_ROIS))


def test_a_joint_training_run_trains_on_real_and_synthetic_rois(synthetic, tmp_path, run_bundle):
    n_synthetic = len(json.loads((synthetic / "datalist.json").read_text())["training"])
    run_bundle(train_args(tmp_path, 1, "--synthetic_datalist", str(synthetic / "datalist.json"), dataset=DM_ROIS))
    folders = RunFolders(tmp_path)
    with folders.train_log.open(newline="") as f:
        assert len(list(csv.DictReader(f))) == (5 + n_synthetic) // 2  # batches of 2, the last partial one dropped
    with folders.val_log.open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 1


def test_a_synthetic_lesion_of_a_held_out_patient_is_refused_before_training_writes_anything(synthetic, tmp_path, run_bundle):
    datalist = json.loads((synthetic / "datalist.json").read_text())
    datalist["training"][0]["patient"] = "P72"  # a DM validation patient
    for item in datalist["training"]:
        for key in ("image", "label"):
            item[key] = str((synthetic / item[key]).resolve())
    leaking = tmp_path / "leaking" / "datalist.json"
    leaking.parent.mkdir()
    leaking.write_text(json.dumps(datalist))
    with pytest.raises(SetupError, match=r"held out of training .*P72.*'validation'") as refused:
        check_synthetic(leaking, DM_ROIS / "datalist.json")
    assert "\n" not in str(refused.value)
    done = run_bundle(train_args(tmp_path / "run", 1, "--synthetic_datalist", str(leaking), dataset=DM_ROIS), check=False)
    assert done.returncode != 0 and "Traceback" not in done.stdout
    assert "held out of training" in last_line(done.stdout) and "P72" in last_line(done.stdout)
    assert not (tmp_path / "run").exists()


def test_items_not_marked_synthetic_are_no_synthetic_datalist(tmp_path):
    with pytest.raises(SetupError, match="not marked 'synthetic'"):
        check_synthetic(DM_ROIS / "datalist.json", DM_ROIS / "datalist.json")
    assert with_synthetic([{"image": "a"}], None) == [{"image": "a"}]


# --------------------------------------------------------------------------- bad input


def test_a_domain_without_images_is_one_line_and_nothing_is_written(cesm, tmp_path, run_bundle):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run"
    done = run_bundle(gan_args(out, cesm, empty, 1), check=False)
    assert done.returncode != 0
    assert "domain B" in last_line(done.stdout) and "no images" in last_line(done.stdout)
    assert "Traceback" not in done.stdout and not out.exists()


def test_a_datalist_split_without_images_is_refused(tmp_path):
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [], "validation": []}))
    with pytest.raises(SetupError, match=r"domain A .*no images"):
        read_domains(datalist, DM_ROIS)


def test_images_of_different_channel_counts_are_refused(tmp_path):
    folder = tmp_path / "rois"
    folder.mkdir()
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(folder / "grey.png")
    colour = np.zeros((40, 40, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(folder / "colour.png")
    with pytest.raises(SetupError, match=r"different channel counts: .*colour\.png \(domain B\) has 3 channels") as refused:
        read_domains(DM_ROIS, folder)
    assert "\n" not in str(refused.value)


def test_grey_rgb_files_count_as_one_channel(tmp_path):
    folder = tmp_path / "rois"
    folder.mkdir()
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(folder / "grey_as_rgb.png")
    assert len(read_domains(DM_ROIS, folder)[1].items) == 1


def test_resuming_with_networks_of_another_size_is_one_line_and_touches_nothing(trained, cesm, tmp_path, run_bundle):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.suffix in (".pt", ".csv")}
    done = run_bundle(gan_args(run, cesm, DM_ROIS, 3, gan_filters=8), check=False)
    assert done.returncode != 0
    assert "gen_ab is not a ResnetGenerator of these sizes" in last_line(done.stdout)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.suffix in (".pt", ".csv")} == before


def test_generating_with_a_checkpoint_of_another_architecture_is_one_line(cesm, tmp_path, capsys):
    from connected_unets.cli import main

    out = tmp_path / "synthetic"
    assert main(["synthesize", "--from", str(cesm), "--out", str(out), "--weights", str(BUNDLE / "models" / "model.pt")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "not a CycleGAN state" in error
    assert not out.exists()


def test_generating_into_a_folder_inside_the_input_is_refused_and_writes_nothing(trained, cesm, capsys):
    from connected_unets.cli import main

    inside = cesm / "images" / "synthetic"
    assert main(["synthesize", "--from", str(cesm), "--out", str(inside), "--weights", str(trained / STATE), "--device", "cpu"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "lies inside the dataset folder" in error
    assert not inside.exists()


def test_training_into_a_folder_inside_a_domain_is_refused(cesm):
    domains = read_domains(cesm, DM_ROIS)
    with pytest.raises(SetupError, match="lies inside the dataset folder"):
        check_setup(domains, cesm / "gan", cesm / "gan" / STATE, {}, resume=True)
    assert not (cesm / "gan").exists()


def test_a_folder_domain_reads_its_images_subfolder(tmp_path):
    folder = tmp_path / "rois" / "images"
    folder.mkdir(parents=True)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(np.full((40, 40), 90, np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    assert [Path(item["image"]).name for item in read_domain(tmp_path / "rois").items] == ["a.png", "b.jpg"]

