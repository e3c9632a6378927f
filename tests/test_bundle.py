"""The MONAI bundle as its users drive it: ``python -m monai.bundle run``, ``verify_net_in_out``,
``ckpt_export`` and ``torchrun``, on the shipped sample data, with tiny models (features
8-16-32-64, 32 x 32 ROIs).

One 1-epoch training run (fixture ``trained``) feeds the resume, evaluation, inference and export
tests. Training, resuming and the distributed run go through the command line and run in the
background (``start_bundle``) while the in-process tests go on; verification, evaluation,
inference and export call the same ``monai.bundle`` functions in this process, which saves a
~10 s interpreter start each.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import monai.bundle
import numpy as np
import pytest
from conftest import kept_rng_state
import torch
from PIL import Image
from tiny_training import (
    BATCH, TINY, RunFolders, assert_same_tensors, load_state, temporary_files, tiny_network, train_args, train_log_lines,
)  # fmt: skip

from connected_unets.networks import NETWORKS
from connected_unets.roi import MarginRule, expand_box, validate_box

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
META = BUNDLE / "configs" / "metadata.json"
COMMON = BUNDLE / "configs" / "common.yaml"  # merged first under every config
TRAIN = BUNDLE / "configs" / "train.yaml"
EVALUATE = BUNDLE / "configs" / "evaluate.yaml"
INFERENCE = BUNDLE / "configs" / "inference.yaml"
DATALIST = json.loads((BUNDLE / "sample_data" / "rois" / "datalist.json").read_text())
SAMPLES = json.loads((BUNDLE / "sample_data" / "samples.json").read_text())

ROI = [32, 32]  # in-process runs' roi_size, as CLI_TINY's
ITERATIONS_PER_EPOCH = len(DATALIST["training"]) // BATCH  # train.yaml drops the last partial batch: 5 items -> 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_in_process(config_file, **override) -> None:
    """What ``python -m monai.bundle run --config_file ... --key value`` does, in this process."""
    with kept_rng_state():
        monai.bundle.run(
            config_file=[str(f) for f in config_file],
            meta_file=str(META),
            logging_file=False,
            bundle_root=str(BUNDLE),
            **override,
        )


def evaluate_in_process(model: Path, out: Path) -> None:
    """``run --config_file "['configs/common.yaml','configs/train.yaml','configs/evaluate.yaml']" --model_file ...``
    with the tiny network, in this process."""
    run_in_process(
        [COMMON, TRAIN, EVALUATE],
        model_file=str(model),
        output_dir=str(out),
        roi_size=ROI,
        batch_size=BATCH,
        **{"network_def#features": TINY},
    )


def read_csv(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines() if line]


@dataclass
class Run(RunFolders):
    """A training run's folders and its log."""

    log: str


SAVE_EVERY_RANK = """\
# test-only addition: every rank saves its final weights before the process group goes
finalize:
  - "$torch.save(@network.module.state_dict(), @output_dir + '/rank' + os.environ['RANK'] + '.pt')"
  - "$dist.is_initialized() and dist.destroy_process_group()"
"""


def distributed_args(root: Path, extra_config: Path) -> list[str]:
    """``torchrun --standalone --nnodes=1 --nproc_per_node=2 -m monai.bundle run --config_file
    "['configs/common.yaml','configs/train.yaml','configs/multi_gpu_train.yaml', <extra>]" ...``, 1 epoch
    on the CPU (gloo)."""
    configs = ["configs/common.yaml", "configs/train.yaml", "configs/multi_gpu_train.yaml", str(extra_config)]
    return [
        "--standalone", "--nnodes=1", "--nproc_per_node=2",
        "-m", "monai.bundle",
        *train_args(root, epochs=1, config_file=repr(configs)),
        "--meta_file", "configs/metadata.json",
        "--logging_file", "configs/logging.conf",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def background(tmp_path_factory, start_bundle):
    """Start the 1-epoch training and the distributed run side by side; end whatever is left."""
    train_root = tmp_path_factory.mktemp("trained")
    ddp_root = tmp_path_factory.mktemp("distributed")
    save_ranks = ddp_root / "save_every_rank.yaml"
    save_ranks.write_text(SAVE_EVERY_RANK)
    started = {
        "train": (train_root, start_bundle(train_args(train_root, epochs=1))),
        "distributed": (ddp_root, start_bundle(distributed_args(ddp_root, save_ranks), module="torch.distributed.run")),
    }
    yield started
    for _, process in started.values():
        process.kill()


@pytest.fixture(scope="module")
def trained(background) -> Run:
    """One epoch of ConnectedResUNets (tiny) on the sample ROI datalist, through the command line."""
    root, process = background["train"]
    return Run(root, process.result().stdout)


@pytest.fixture(scope="module")
def resume(trained, tmp_path_factory, start_bundle):
    """A copy of the 1-epoch run, continued with ``--epochs 2`` in the background."""
    root = tmp_path_factory.mktemp("resumed") / "run"
    shutil.copytree(trained.root, root)
    process = start_bundle(train_args(root, epochs=2))
    yield root, process
    process.kill()


@pytest.fixture(scope="module")
def distributed(background) -> Run:
    root, process = background["distributed"]
    return Run(root, process.result().stdout)


# --------------------------------------------------------------------------- verify_net_in_out


def test_verify_net_in_out_passes_for_the_shipped_network(background, caplog):
    """``verify_net_in_out --net_id network_def --meta_file configs/metadata.json --config_file
    configs/inference.yaml --n 16``: default network and features, 16*n = 256 px."""
    # (requesting `background` starts the command-line runs first, to overlap with these checks)
    with caplog.at_level("INFO"):
        monai.bundle.verify_net_in_out(
            net_id="network_def", meta_file=str(META), config_file=[str(COMMON), str(INFERENCE)], n=16, device="cpu"
        )
    assert "verified with no error" in caplog.text


@pytest.mark.parametrize("name", list(NETWORKS))
def test_verify_net_in_out_passes_for_every_network(name, caplog):
    """The same with ``--network_name <name>`` (and tiny features to stay fast)."""
    with caplog.at_level("INFO"):
        monai.bundle.verify_net_in_out(
            net_id="network_def",
            meta_file=str(META),
            config_file=[str(COMMON), str(INFERENCE)],
            n=16,
            device="cpu",
            network_name=name,
            **{"network_def#features": TINY},
        )
    assert "verified with no error" in caplog.text


# --------------------------------------------------------------------------- training


def test_training_writes_the_best_model_and_the_training_state(trained, resume):
    # (requesting `resume` starts the resumed run in the background as soon as training is done)
    assert trained.model.is_file() and trained.ckpt_dir.joinpath("model.json").is_file()
    assert trained.state_file.is_file()
    assert not temporary_files(trained.ckpt_dir, trained.output_dir)
    score = trained.score
    assert score["metric"] == "val_mean_dice" and score["epoch"] == 1
    assert 0.0 <= score["score"] <= 1.0
    assert train_log_lines(trained.log, epochs=1) == [(1, i) for i in range(1, ITERATIONS_PER_EPOCH + 1)]
    state = load_state(trained.state_file)
    assert set(state) == {"model", "optimizer", "trainer"}
    assert dict(state["trainer"]) == {
        "epoch_length": ITERATIONS_PER_EPOCH,
        "iteration": ITERATIONS_PER_EPOCH,
        "max_epochs": 1,
    }


def test_model_pt_is_a_plain_state_dict_of_the_network(trained):
    weights = load_state(trained.model)
    reference = tiny_network().state_dict()
    assert list(weights) == list(reference)
    assert all(weights[k].shape == reference[k].shape and weights[k].dtype == reference[k].dtype for k in reference)
    tiny_network().load_state_dict(weights, strict=True)
    # after one epoch the best model is the model of the training state
    assert_same_tensors(weights, load_state(trained.state_file)["model"])


# --------------------------------------------------------------------------- evaluation


def test_evaluate_writes_one_row_per_validation_lesion(trained, tmp_path):
    out = tmp_path / "evaluation"
    evaluate_in_process(trained.model, out)
    lesions = [item["lesion"] for item in DATALIST["validation"]]
    assert len(lesions) == 3
    header, *rows = read_csv(out / "cases.csv")
    assert header[:3] == ["image", "lesion", "patient"]
    assert [row[1] for row in rows] == lesions
    dice = [float(row[header.index("dice")]) for row in rows]
    assert all(0.0 <= d <= 1.0 for d in dice)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dice"]["mean"] == pytest.approx(np.mean(dice), abs=1e-6)
    # the same model and validation pipeline as the training run's best-model score
    assert summary["dice"]["mean"] == pytest.approx(trained.score["score"], abs=1e-6)


# --------------------------------------------------------------------------- inference


def test_inference_writes_one_full_size_mask_per_sample_image(trained, tmp_path):
    out = tmp_path / "inference"
    run_in_process(
        [COMMON, INFERENCE], model_file=str(trained.model), output_dir=str(out), roi_size=ROI, **{"network_def#features": TINY}
    )
    stems = [Path(sample["image"]).stem for sample in SAMPLES]
    assert len(set(stems)) == 6
    expected = {f"{stem}_mask{suffix}" for stem in stems for suffix in (".png", "_rois.csv", "_rois.json")}
    assert {p.name for p in out.iterdir()} == expected | {"inference_summary.json"}
    summary = json.loads((out / "inference_summary.json").read_text())
    assert len(summary["written"]) == 6 and summary["skipped"] == []
    for sample in SAMPLES:
        image = np.asarray(Image.open(BUNDLE / "sample_data" / sample["image"]))
        mask = np.asarray(Image.open(out / (Path(sample["image"]).stem + "_mask.png")))
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        # nothing outside the ROIs that were cropped around the boxes
        inside = np.zeros(mask.shape, dtype=bool)
        for box in sample["boxes"]:
            x0, y0, x1, y1 = expand_box(validate_box(box, mask.shape), mask.shape, MarginRule())
            inside[y0:y1, x0:x1] = True
        assert not mask[~inside].any()


# --------------------------------------------------------------------------- export


def test_ckpt_export_gives_torchscript_with_the_eager_outputs(trained, tmp_path):
    """``ckpt_export --net_id network_def --filepath model.ts --ckpt_file model.pt --meta_file
    configs/metadata.json --config_file "['configs/common.yaml','configs/inference.yaml']" --use_trace True --input_shape
    "[1,3,32,32]"`` (model.pt is a plain state_dict, so no --key_in_ckpt)."""
    exported = tmp_path / "model.ts"
    monai.bundle.ckpt_export(
        net_id="network_def",
        filepath=str(exported),
        ckpt_file=str(trained.model),
        meta_file=str(META),
        config_file=[str(COMMON), str(INFERENCE)],
        # tracing: the networks cannot be scripted yet (see test_ckpt_export_by_scripting)
        use_trace=True,
        input_shape=[1, 3, 32, 32],
        **{"network_def#features": TINY},
    )
    extra = {"metadata.json": "", "common.json": "", "inference.json": ""}
    scripted = torch.jit.load(str(exported), map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["metadata.json"])
    assert meta["network_data_format"] == json.loads(META.read_text())["network_data_format"]
    assert json.loads(extra["common.json"])["network_def"]["name"] == "@network_name"  # the network lives in common.yaml
    assert "segmenter" in json.loads(extra["inference.json"])

    eager = tiny_network()
    eager.load_state_dict(load_state(trained.model))
    eager.eval()
    torch.manual_seed(0)
    for shape in [(1, 3, 32, 32), (2, 3, 64, 48)]:  # the trace is not tied to its example size
        x = torch.rand(*shape)
        with torch.no_grad():
            difference = (scripted(x) - eager(x)).abs().max().item()
        assert difference < 1e-5, shape


def test_ckpt_export_by_scripting(trained, tmp_path):
    monai.bundle.ckpt_export(
        net_id="network_def",
        filepath=str(tmp_path / "model.ts"),
        ckpt_file=str(trained.model),
        meta_file=str(META),
        config_file=[str(COMMON), str(INFERENCE)],
        **{"network_def#features": TINY},
    )
    assert (tmp_path / "model.ts").is_file()


# --------------------------------------------------------------------------- resuming


def test_a_second_run_resumes_where_the_first_stopped(trained, resume):
    """``run --config_file "['configs/common.yaml','configs/train.yaml']" ... --epochs 2`` on the folders of the 1-epoch run."""
    root, process = resume
    before = trained.score
    resumed = Run(root, process.result().stdout)

    assert f"Restored all variables from {resumed.state_file}" in resumed.log
    # only epoch 2 ran (ignite's "resuming from iteration 0, epoch 0" line comes before the state is loaded)
    assert train_log_lines(resumed.log, epochs=2) == [(2, i) for i in range(1, ITERATIONS_PER_EPOCH + 1)]
    state = load_state(resumed.state_file)
    assert dict(state["trainer"]) == {
        "epoch_length": ITERATIONS_PER_EPOCH,
        "iteration": 2 * ITERATIONS_PER_EPOCH,  # ignite's epoch = iteration / epoch_length = 2
        "max_epochs": 2,
    }
    # the optimizer resumed too: Adam counted the steps of both epochs
    steps = {float(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {2.0 * ITERATIONS_PER_EPOCH}
    # the best model is only ever replaced by a better one
    after = resumed.score
    assert after["score"] >= before["score"]
    if after["epoch"] == 1:
        assert_same_tensors(load_state(resumed.model), load_state(trained.model))
    else:
        assert after["epoch"] == 2
        assert_same_tensors(load_state(resumed.model), state["model"])


# --------------------------------------------------------------------------- multi-GPU config on the CPU


def test_distributed_training_on_two_cpu_processes(distributed):
    run = distributed
    assert run.model.is_file() and run.state_file.is_file()
    assert not temporary_files(run.ckpt_dir, run.output_dir)
    # only rank 0 writes checkpoints (both ranks log to the same stdout)
    assert run.log.count("new best val_mean_dice") == 1
    assert run.log.count("training state saved") == 1
    # each rank trains on its shard: 5 items padded to 6, 3 per rank = 2 batches of 2
    shard_iterations = math.ceil(len(DATALIST["training"]) / 2) // BATCH  # even shards, partial batch dropped
    lines = train_log_lines(run.log, epochs=1)
    assert sorted(lines) == sorted([(1, i) for i in range(1, shard_iterations + 1)] * 2)
    assert dict(load_state(run.state_file)["trainer"])["epoch_length"] == shard_iterations


def test_distributed_ranks_end_with_identical_weights(distributed):
    rank0 = load_state(distributed.output_dir / "rank0.pt")
    rank1 = load_state(distributed.output_dir / "rank1.pt")
    assert_same_tensors(rank0, rank1)  # parameters and BN statistics
    # the best model (epoch 1 of 1) is those weights, saved without DDP's "module." prefix
    assert_same_tensors(load_state(distributed.model), rank0)
    assert list(rank0) == list(tiny_network().state_dict())


def test_distributed_validation_scores_all_lesions_of_both_ranks(distributed, tmp_path):
    """The logged score gathers both validation shards: it equals a single-process evaluation."""
    out = tmp_path / "evaluation"
    evaluate_in_process(distributed.model, out)
    assert len(read_csv(out / "cases.csv")) == 1 + len(DATALIST["validation"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dice"]["mean"] == pytest.approx(distributed.score["score"], abs=1e-5)


def test_distributed_training_state_can_be_resumed(distributed):
    state = load_state(distributed.state_file)
    assert list(state["model"]) == list(tiny_network().state_dict())


def test_a_yes_no_setting_must_be_a_bool():
    """bundle.check_flags, which every config's initialize and the Segmenter call for their yes/no keys."""
    from connected_unets.bundle import check_flags

    check_flags(resume=True, fast=False)
    with pytest.raises(ValueError, match=r"^fast 'false': expected True or False \(on the command line `--fast False`"):
        check_flags(resume=True, fast="false")
