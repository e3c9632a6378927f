"""``run.json`` (connected_unets.runinfo): every training and evaluation run records its merged config,
package versions, git commit, data checksums, seed, machine, precision and start time beside its
outputs. The bundle runs here are in-process, tiny (features 8-16-32-64, 32 x 32 ROIs, batch 2) and
1 epoch long."""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import monai.bundle
import pytest
import torch
from conftest import kept_rng_state

from connected_unets import __version__, runinfo
from connected_unets.networks import get_network
from connected_unets.precision import resolve_channels_last, resolve_precision

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
CONFIGS = BUNDLE / "configs"
ROIS = BUNDLE / "sample_data" / "rois"
TINY = {"roi_size": [32, 32], "network_def#features": [8, 16, 32, 64], "batch_size": 2, "num_workers": 0}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_bundle_in_process(configs: list[str], **override) -> None:
    """``python -m monai.bundle run --config_file "['configs/common.yaml', ...]" --key value``, in this process."""
    with kept_rng_state():
        monai.bundle.run(
            config_file=[str(CONFIGS / c) for c in ["common.yaml", *configs]],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,
            bundle_root=str(BUNDLE),
            **TINY,
            **override,
        )


def read_record(folder: Path) -> dict:
    return json.loads((folder / runinfo.RUN_INFO).read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


@pytest.fixture(scope="module")
def training_record(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("train")
    run_bundle_in_process(["train.yaml"], epochs=1, output_dir=str(root / "eval"), ckpt_dir=str(root / "models"), seed=3)
    return root / "eval", read_record(root / "eval")


# --------------------------------------------------------------------------- the bundle runs


def test_training_writes_run_json_beside_its_outputs(training_record):
    folder, record = training_record
    assert record["kind"] == "train"
    assert record["seed"] == 3
    assert record["precision"] == resolve_precision("auto", "cpu")  # train.yaml's train_precision
    assert record["channels_last"] is resolve_channels_last("auto", "cpu")  # common.yaml's use_channels_last
    assert (folder / "connected_resunets_train_state.pt").is_file()
    assert not temporary_files(folder)
    started = datetime.datetime.fromisoformat(record["started_utc"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()) < 600


def test_the_config_is_the_merged_one_with_the_overrides(training_record):
    config = training_record[1]["config"]
    assert config["network_def"]["features"] == [8, 16, 32, 64]  # a command-line override
    assert config["network_def"]["name"] == "@network_name"  # references stay as text
    assert config["seed"] == 3 and config["epochs"] == 1
    assert "roi_preprocessing" in config and "train" in config  # common.yaml + train.yaml
    assert config["_meta_"]["version"] == json.loads((CONFIGS / "metadata.json").read_text())["version"]


def test_versions_machine_and_data_are_recorded(training_record):
    record = training_record[1]
    assert record["versions"]["torch"] == torch.__version__
    assert record["versions"]["connected_unets"] == __version__
    assert set(record["versions"]) >= {"python", "torch", "monai", "numpy", "connected_unets"}
    assert record["machine"]["device"] == "cpu" and record["machine"]["gpu"] is None
    assert record["machine"]["cpu"] and record["machine"]["torch_threads"] >= 1
    data = record["data"]
    assert data["datalist_sha256"] == sha256(ROIS / "datalist.json")
    assert data == runinfo.data_checksums(ROIS / "datalist.json", ROIS)
    listed = json.loads((ROIS / "datalist.json").read_text())
    n_entries = len(listed["training"]) + len(listed["validation"])
    assert data["files"] == 2 * n_entries and data["missing"] == []  # one image and one label each


def test_evaluation_writes_run_json(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    torch.save(get_network("connected_resunets", in_channels=3, out_channels=1, features=[8, 16, 32, 64]).state_dict(), weights)
    out = tmp_path / "report"
    run_bundle_in_process(["train.yaml", "evaluate.yaml"], model_file=str(weights), output_dir=str(out))
    record = read_record(out)
    assert record["kind"] == "evaluate"
    assert record["precision"] == "fp32"  # validation and evaluation always score in fp32
    assert record["config"]["evaluate_split"] == "validation"
    assert record["config"]["model_file"] == str(weights)
    assert record["data"]["datalist_sha256"] == sha256(ROIS / "datalist.json")
    assert (out / "summary.json").is_file()


# --------------------------------------------------------------------------- the pieces


def copy_rois(target: Path) -> Path:
    shutil.copytree(ROIS, target)
    return target


def test_the_data_hash_names_the_data_not_the_folder(tmp_path):
    first = runinfo.data_checksums(copy_rois(tmp_path / "a") / "datalist.json")
    second = runinfo.data_checksums(copy_rois(tmp_path / "b") / "datalist.json")
    assert first["files_sha256"] == second["files_sha256"] and first["datalist_sha256"] == second["datalist_sha256"]
    label = tmp_path / "b" / json.loads((ROIS / "datalist.json").read_text())["validation"][0]["label"]
    label.write_bytes(label.read_bytes() + b"\0")
    assert runinfo.data_checksums(tmp_path / "b" / "datalist.json")["files_sha256"] != first["files_sha256"]


def test_missing_files_are_named_not_fatal(tmp_path):
    rois = copy_rois(tmp_path / "rois")
    image = json.loads((rois / "datalist.json").read_text())["training"][0]["image"]
    (rois / image).unlink()
    data = runinfo.data_checksums(rois / "datalist.json", rois)
    assert data["missing"] == [image]


def test_git_commit_of_this_checkout():
    repo = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if shutil.which("git") is None or head.returncode != 0:
        pytest.skip("not a git checkout")
    record = runinfo.git_commit()
    assert record is not None and record["commit"] == head.stdout.strip()
    assert isinstance(record["dirty"], bool)


def test_git_commit_outside_a_checkout_is_none(tmp_path):
    assert runinfo.git_commit(tmp_path) is None


def test_outside_a_config_the_given_config_is_written(tmp_path):
    path = runinfo.write_run_info(
        tmp_path, "train", seed=1, device="cpu", precision="fp32", datalist_file=ROIS / "datalist.json", config={"epochs": 2}
    )
    assert path == tmp_path / "run.json"
    assert read_record(tmp_path)["config"] == {"epochs": 2}


def test_a_failed_write_keeps_the_previous_record(tmp_path, monkeypatch):
    arguments = dict(seed=1, device="cpu", precision="fp32", datalist_file=ROIS / "datalist.json", config={})
    runinfo.write_run_info(tmp_path, "train", **arguments)
    before = (tmp_path / "run.json").read_bytes()

    def broken_dumps(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runinfo.json, "dumps", broken_dumps)
    with pytest.raises(OSError, match="disk full"):
        runinfo.write_run_info(tmp_path, "evaluate", **arguments)
    assert (tmp_path / "run.json").read_bytes() == before
    assert not temporary_files(tmp_path)
