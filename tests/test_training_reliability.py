"""Crash-safe, reproducible runs, driven as users drive them (``python -m monai.bundle run``,
``connected-unets evaluate``) with tiny models (features 8-16-32-64, 32 x 32 ROIs, batch 2):

- a training run killed with SIGKILL in the middle of an epoch resumes from its last saved epoch with
  the same command, leaving no temporary file, the best-model record of an uninterrupted run, and
  learning curves with every step once;
- a run that could not finish (folder not writable, no room for a checkpoint) or would resume from
  files of another network stops before training with one line, touching no file of the last run;
- the same seed, data and device give the same numbers;
- an evaluation whose datalist names a missing image exits with status 2, not an abort.

The training runs use the sample ROIs with the training lesions listed 8 times (20 steps an epoch),
so a step of epoch 2 can be caught from the learning-curve CSV before the epoch ends.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tiny_training import (
    BATCH, STATE_NAME, RunFolders, assert_same_tensors, load_state, temporary_files, tiny_network, train_args, train_log_lines,
)  # fmt: skip

from connected_unets import preflight
from connected_unets.networks import get_network

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
ROIS = BUNDLE / "sample_data" / "rois"
DATALIST = json.loads((ROIS / "datalist.json").read_text())
REPEATS = 8
STEPS = len(DATALIST["training"]) * REPEATS // BATCH  # per epoch (train.yaml drops a partial last batch)


def absolute(entry: dict) -> dict:
    return {**entry, "image": str(ROIS / entry["image"]), "label": str(ROIS / entry["label"])}


def write_datalist(folder: Path, **splits: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "datalist.json").write_text(json.dumps(splits))
    return folder


def csv_rows(path: Path) -> list[dict[str, str]]:
    """Complete lines only: a killed writer may leave half a row."""
    lines = [line.rstrip("\r") for line in path.read_text().split("\n")[:-1]] if path.is_file() else []
    if not lines:
        return []
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


@dataclass
class AfterKill:
    """What the killed run left, read before the resumed run changes it."""

    folders: RunFolders
    state_trainer: dict
    score: dict
    model: dict
    train_rows: list[dict[str, str]]
    val_rows: list[dict[str, str]]
    temporaries: list[Path]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    training = [absolute(e) for e in DATALIST["training"]] * REPEATS
    return write_datalist(tmp_path_factory.mktemp("rois"), training=training, validation=[absolute(e) for e in DATALIST["validation"]])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, start_bundle, dataset):
    """Side by side: the run to kill (2 epochs) and two uninterrupted 1-epoch runs with the same seed."""
    roots = {name: RunFolders(tmp_path_factory.mktemp(name)) for name in ("killed", "reference", "repeat")}
    epochs = {"killed": 2, "reference": 1, "repeat": 1}
    started = {name: (roots[name], start_bundle(train_args(roots[name].root, epochs[name], dataset=dataset))) for name in roots}
    yield started
    for _, process in started.values():
        process.kill()


def wait_for_step(process, log: Path, iteration: int, timeout: float = 300) -> None:
    """Poll the learning-curve CSV until it shows ``iteration``; fail if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(int(r["iteration"]) >= iteration for r in csv_rows(log) if r.get("iteration", "").isdigit()):
            return
        if process.proc.poll() is not None:
            pytest.fail(f"the run ended before step {iteration}:\n{process.proc.communicate()[0][-3000:]}")
        time.sleep(0.01)
    pytest.fail(f"no step {iteration} in {log} after {timeout} s")


@pytest.fixture(scope="module")
def killed(runs) -> AfterKill:
    """SIGKILL (the whole process group) once two steps of epoch 2 are logged."""
    folders, process = runs["killed"]
    wait_for_step(process, folders.train_log, STEPS + 2)
    process.kill()
    return AfterKill(
        folders=folders,
        state_trainer=dict(load_state(folders.state_file)["trainer"]),
        score=folders.score,
        model=load_state(folders.model),
        train_rows=csv_rows(folders.train_log),
        val_rows=csv_rows(folders.val_log),
        temporaries=temporary_files(folders.output_dir, folders.ckpt_dir),
    )


STALE = ".tmp-0123456789ab-" + STATE_NAME  # what a kill during a save would leave


@pytest.fixture(scope="module")
def resumed(killed, start_bundle, dataset) -> str:
    """The same command again, after planting an hour-old temporary of an interrupted save."""
    stale = killed.folders.output_dir / STALE
    stale.write_bytes(b"half a checkpoint")
    an_hour_ago = time.time() - 2 * preflight.STALE_AFTER_S
    os.utime(stale, (an_hour_ago, an_hour_ago))
    return start_bundle(train_args(killed.folders.root, 2, dataset=dataset)).result().stdout


# --------------------------------------------------------------------------- SIGKILL mid-epoch


def test_the_kill_struck_in_the_middle_of_epoch_2(refusals, evaluations, killed):
    # (requesting `refusals` and `evaluations` first starts their command-line runs beside the training runs)
    assert killed.state_trainer == {"epoch_length": STEPS, "iteration": STEPS, "max_epochs": 2}  # epoch 1 saved
    assert max(int(r["iteration"]) for r in killed.train_rows) > STEPS + 1  # steps of epoch 2 that will be redone
    assert not killed.temporaries


def test_after_the_kill_the_best_model_is_the_uninterrupted_runs(killed, runs):
    reference, process = runs["reference"]
    process.result()
    assert killed.score == reference.score and killed.score["epoch"] == 1
    assert_same_tensors(killed.model, load_state(reference.model))
    assert killed.val_rows and [r["val_mean_dice"] for r in killed.val_rows] == [r["val_mean_dice"] for r in csv_rows(reference.val_log)]


def test_resuming_continues_from_the_last_saved_epoch(killed, resumed):
    folders = killed.folders
    assert f"Restored all variables from {folders.state_file}" in resumed
    assert train_log_lines(resumed, epochs=2) == [(2, i) for i in range(1, STEPS + 1)]  # epoch 2 only
    state = load_state(folders.state_file)
    assert dict(state["trainer"]) == {"epoch_length": STEPS, "iteration": 2 * STEPS, "max_epochs": 2}
    assert {float(s["step"]) for s in state["optimizer"]["state"].values()} == {2.0 * STEPS}  # Adam resumed too
    after = folders.score
    assert after["score"] >= killed.score["score"]
    if after["epoch"] == 1:
        assert_same_tensors(load_state(folders.model), killed.model)
    else:
        assert after["epoch"] == 2
        assert_same_tensors(load_state(folders.model), state["model"])


def test_the_learning_curves_have_every_step_once(killed, resumed):
    train = csv_rows(killed.folders.train_log)
    assert [int(r["iteration"]) for r in train] == list(range(1, 2 * STEPS + 1))
    assert [int(r["epoch"]) for r in train] == [1] * STEPS + [2] * STEPS
    assert [int(r["iteration"]) for r in csv_rows(killed.folders.val_log)] == [STEPS, 2 * STEPS]
    # the rows of epoch 1 are the killed run's, untouched
    assert train[:STEPS] == killed.train_rows[:STEPS]


def test_no_temporary_file_is_left(killed, resumed):
    folders = killed.folders
    assert "left by an interrupted save" in resumed
    assert not temporary_files(folders.output_dir, folders.ckpt_dir)
    assert json.loads((folders.output_dir / "run.json").read_text())["kind"] == "train"


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_data_and_device_give_identical_metrics_and_weights(runs):
    """Two 1-epoch runs, same seed (train.yaml's ``seed``, set_determinism), data, device and
    thread count: identical losses, validation metrics, best model and training state.

    Not reproducible, by design or by the hardware:
    - across CPUs with and without bf16 units: ``precision: auto`` trains in bf16 autocast on a CPU
      with AMX / AVX512-BF16 and in fp32 on one without, so the numbers differ from the first step
      (run.json records the resolved precision and the CPU); oneDNN's AVX2, AVX-512 and AMX kernels
      also round differently;
    - across thread counts (OMP_NUM_THREADS, torch.set_num_threads; the tests run one thread):
      sums are reduced in another order;
    - on GPUs without ``torch.use_deterministic_algorithms`` (cuDNN autotuning, atomic adds), and
      with loader workers (``num_workers`` > 0 draws the augmentations in worker processes);
    - past a resume: the training state holds the network, the optimizer and the trainer's
      counters but not the random generators, which ``set_determinism`` restarts, so the shuffling
      and augmentations after the resume differ from an uninterrupted run's.
    """
    (first, first_run), (second, second_run) = runs["reference"], runs["repeat"]
    first_run.result(), second_run.result()
    assert [r["loss"] for r in csv_rows(first.train_log)] == [r["loss"] for r in csv_rows(second.train_log)]
    metrics = ["epoch", "iteration", "val_mean_dice", "val_mean_iou"]
    assert [[r[m] for m in metrics] for r in csv_rows(first.val_log)] == [[r[m] for m in metrics] for r in csv_rows(second.val_log)]
    assert first.score == second.score
    assert_same_tensors(load_state(first.model), load_state(second.model))
    first_state, second_state = load_state(first.state_file), load_state(second.state_file)
    assert_same_tensors(first_state["model"], second_state["model"])
    for key, moments in first_state["optimizer"]["state"].items():  # Adam's moments, parameter by parameter
        other = second_state["optimizer"]["state"][key]
        assert torch.equal(moments["exp_avg"], other["exp_avg"]) and torch.equal(moments["exp_avg_sq"], other["exp_avg_sq"])


# --------------------------------------------------------------------------- refusals before training


def training_state(network: torch.nn.Module) -> dict:
    """What train.yaml's TrainStateSaver writes after one 2-step epoch."""
    optimizer = torch.optim.Adam(network.parameters())
    trainer = {"epoch_length": 2, "iteration": 2, "max_epochs": 1}
    return {"model": network.state_dict(), "optimizer": optimizer.state_dict(), "trainer": trainer}


def test_the_space_check_asks_for_at_least_what_training_writes(runs):
    reference, process = runs["reference"]
    process.result()
    assert reference.state_file.stat().st_size <= preflight.checkpoint_bytes(tiny_network(), preflight.ADAM_COPIES)
    assert reference.model.stat().st_size <= preflight.checkpoint_bytes(tiny_network())


def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("chmod does not stop this user (root) from writing")
        with pytest.raises(preflight.SetupError, match=r"output_dir .*read_only: cannot write there \(Permission denied\)"):
            preflight.check_writable(folder / "eval", what="output_dir")
    finally:
        folder.chmod(0o700)


def test_a_folder_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(preflight.SetupError, match=r"ckpt_dir .*file/models: cannot write there \(Not a directory\)"):
        preflight.check_writable(tmp_path / "file" / "models", what="ckpt_dir")


def test_too_little_free_space_is_refused(tmp_path):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with pytest.raises(preflight.SetupError, match=r"GB free, a checkpoint needs") as err:
        preflight.check_writable(tmp_path, required_bytes=free + 10**12)
    assert "\n" not in str(err.value)
    assert preflight.check_writable(tmp_path, required_bytes=preflight.checkpoint_bytes(tiny_network(), preflight.ADAM_COPIES)) == tmp_path


def test_only_old_temporaries_are_removed(tmp_path):
    old, young, other = tmp_path / ".tmp-0123456789ab-model.pt", tmp_path / ".tmp-ba9876543210-model.pt", tmp_path / ".tmp-notes"
    for path in (old, young, other):
        path.write_text("x")
    long_ago = time.time() - 2 * preflight.STALE_AFTER_S
    os.utime(old, (long_ago, long_ago))
    os.utime(other, (long_ago, long_ago))
    assert preflight.remove_stale_temporaries(tmp_path) == [old]
    assert young.exists() and other.exists()  # another process's write in progress; not ours


def test_state_and_weights_checks(tmp_path):
    network = tiny_network()
    state = tmp_path / "state.pt"
    torch.save(training_state(network), state)
    preflight.check_resume_state(state, network)  # its own state: passes
    preflight.check_weights(state, network)  # init_weights may be a training state
    torch.save(network.state_dict(), tmp_path / "model.pt")
    preflight.check_weights(tmp_path / "model.pt", network)
    wider = get_network("connected_resunets", in_channels=3, out_channels=1, features=[16, 32, 64, 128])
    with pytest.raises(preflight.SetupError, match=r"not a training state of this ConnectedResUNets \(\d+ of another shape"):
        preflight.check_resume_state(state, wider)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(preflight.SetupError, match=r"truncated.pt: cannot be read as a PyTorch file"):
        preflight.check_resume_state(truncated, network)
    with pytest.raises(preflight.SetupError, match=r"model.pt: not a training state \(expected model, optimizer, trainer"):
        preflight.check_resume_state(tmp_path / "model.pt", network)


@pytest.fixture(scope="module")
def refusals(tmp_path_factory, start_bundle, dataset):
    """Three runs that must stop in `initialize`, side by side: a ckpt_dir under a file, resuming
    from a state of another network (with the last run's files beside it), init_weights of another
    network. Returns {name: (RunFolders, started process, files before)}."""
    made = {name: RunFolders(tmp_path_factory.mktemp(name)) for name in ("unwritable", "other_state", "other_weights", "other_settings", "word_flag")}
    (made["unwritable"].root / "file").write_text("")
    other = made["other_state"]
    for folder in (other.output_dir, other.ckpt_dir):
        folder.mkdir(parents=True)
    torch.save(training_state(tiny_network("unet")), other.state_file)
    torch.save(tiny_network("unet").state_dict(), other.model)
    (other.ckpt_dir / "model.json").write_text('{"metric": "val_mean_dice", "score": 0.5, "epoch": 1}')
    other.train_log.write_text("utc,epoch,iteration,loss,wall_s,cpu_s\n2026-01-01T00:00:00Z,1,1,0.5,0.1,0.1\n")
    before = {p: p.read_bytes() for p in [other.state_file, other.model, other.ckpt_dir / "model.json", other.train_log]}
    changed = made["other_settings"]  # this network's state, but the run started at another learning rate
    changed.output_dir.mkdir(parents=True)
    torch.save(training_state(tiny_network()), changed.state_file)
    (changed.output_dir / "run.json").write_text(json.dumps({"kind": "train", "config": {"learning_rate": 0.001, "epochs": 7}}))
    extra = {
        "unwritable": ["--ckpt_dir", str(made["unwritable"].root / "file" / "models")],
        "other_state": [],
        "other_weights": ["--init_weights", str(BUNDLE / "models" / "unet.pt")],
        "other_settings": [],
        "word_flag": ["--resume", "false"],  # fire passes the word on: Python would take it as true
    }
    started = {n: start_bundle(train_args(made[n].root, 1, *extra[n], dataset=dataset), check=False) for n in made}
    before_changed = {p: p.read_bytes() for p in [changed.state_file, changed.output_dir / "run.json"]}
    yield {n: (made[n], started[n], {"other_state": before, "other_settings": before_changed}.get(n, {})) for n in made}
    for process in started.values():
        process.kill()


def assert_one_line_refusal(process, pattern: str) -> None:
    result = process.result()
    assert result.returncode == 1, result.stdout[-2000:]
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), result.stdout[-2000:]
    assert "Traceback" not in result.stdout and "Loading dataset" not in result.stdout


def test_an_unwritable_ckpt_dir_stops_the_run_before_training(refusals):
    folders, process, _ = refusals["unwritable"]
    assert_one_line_refusal(process, r"^error: ckpt_dir \S+/file/models: cannot write there \(Not a directory\)$")
    assert not any(folders.output_dir.iterdir())  # no state, no log, no run.json


def test_resuming_from_a_state_of_another_network_is_one_line_and_touches_nothing(refusals):
    folders, process, before = refusals["other_state"]
    expected = rf"^error: {re.escape(str(folders.state_file))}: not a training state of this ConnectedResUNets \(\d+ of its \d+ tensors missing"
    assert_one_line_refusal(process, expected)
    assert "Missing key(s)" not in process.result().stdout
    assert {p: p.read_bytes() for p in before} == before
    assert not (folders.output_dir / "run.json").exists() and not temporary_files(folders.output_dir, folders.ckpt_dir)


def test_init_weights_of_another_network_are_one_line(refusals):
    folders, process, _ = refusals["other_weights"]
    assert_one_line_refusal(process, r"^error: \S+/models/unet.pt: init_weights are not weights of this ConnectedResUNets \(")
    assert not folders.state_file.exists() and not folders.model.exists()


def test_resuming_with_other_settings_than_the_run_started_with_is_one_line_and_touches_nothing(refusals):
    """E.g. scripts/compare_synthetic.sh run again with another INIT would carry on the old run as the new one."""
    folders, process, before = refusals["other_settings"]
    expected = rf"^error: {re.escape(str(folders.output_dir))}: the run there started with other settings \(learning_rate 0.001 -> 0.0001\); resume it with"
    assert_one_line_refusal(process, expected)
    assert {p: p.read_bytes() for p in before} == before  # run.json still says how the run started


def test_a_yes_no_setting_given_as_a_word_is_one_line(refusals):
    folders, process, _ = refusals["word_flag"]
    assert_one_line_refusal(process, r"^error: resume 'false': expected True or False \(on the command line `--resume False`")
    assert not folders.state_file.exists()


def test_the_settings_check_compares_what_makes_a_run(tmp_path):
    started = {"learning_rate": 0.0001, "box_loosen": [-0.05, 0.4], "epochs": 10, "seed": 0}
    (tmp_path / "run.json").write_text(json.dumps({"config": started}))
    preflight.check_resume_settings(tmp_path, config={**started, "epochs": 40, "box_loosen": (-0.05, 0.4)})  # more epochs: extending it
    preflight.check_resume_settings(tmp_path, config={**started, "init_weights": "model.pt"})  # a key the record lacks
    preflight.check_resume_settings(tmp_path / "no_record", config=started)  # a run older than run.json
    with pytest.raises(preflight.SetupError, match=r"other settings \(seed 0 -> 1; box_loosen \[-0.05, 0.4\] -> \[0.0, 0.3\]\)"):
        preflight.check_resume_settings(tmp_path, config={**started, "box_loosen": [0.0, 0.3], "seed": 1})


# --------------------------------------------------------------------------- evaluation exit status


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    """Three ``connected-unets evaluate`` runs at once on a datalist whose first image is missing,
    then 300 good cases, stdout and stderr to files (the abort showed most there)."""
    folder = tmp_path_factory.mktemp("evaluate")
    good = [absolute(e) for e in DATALIST["validation"]] * 100
    missing = {**good[0], "image": str(folder / "missing.png"), "lesion": "missing"}
    rois = write_datalist(folder / "rois", validation=[missing, *good])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "connected_unets.cli", "evaluate", "--dataset-dir", str(rois), "--device", "cpu"]
    started = []
    for i in range(3):
        with (folder / f"out{i}.txt").open("w") as out, (folder / f"err{i}.txt").open("w") as err:
            process = subprocess.Popen([*command, "--out", str(folder / f"report{i}")], stdout=out, stderr=err, env=env)
        started.append((process, folder / f"err{i}.txt"))
    yield folder / "missing.png", started
    for process, _ in started:
        if process.poll() is None:
            process.kill()


def test_evaluate_with_a_missing_image_exits_with_status_2(evaluations):
    """It used to print the right one-line error and then abort (status 134, "terminate called
    without an active exception"): CacheDataset's loading thread was still inside torch when the
    interpreter exited. The abort was a race (about half of the runs of this setup), hence three runs."""
    missing, started = evaluations
    for process, err in started:
        process.wait(timeout=300)
        stderr = err.read_text()
        assert process.returncode == 2, stderr[-2000:]
        assert stderr.rstrip().endswith(f"connected-unets: error: {missing}: file not found")
        assert "terminate called" not in stderr and "Traceback" not in stderr
