"""The command line's options around the commands: --device values it cannot use, --model names
whose weights do not ship, --version and -v, and the Python API's device=None.

Every test runs the real command (``connected_unets.cli.main`` in-process, or ``python -m
connected_unets.cli`` where what a shell sees counts) on the shipped sample mammogram, with the
bundle's own weights files: nothing is mocked. Which networks ship is read from the catalogue
(``connected_unets.bundle.shipped_networks``), so the tests hold whatever weights the bundle holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import connected_unets
from connected_unets.bundle import DEFAULT_NETWORK, network_names, resolve_device, shipped_networks, weights_file
from connected_unets.cli import build_parser, main

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
IMAGE = BUNDLE / "sample_data" / "images" / "P60_L_DM_MLO.jpg"
BOX = ["175", "142", "302", "267"]  # the sample's mass (samples.json)
NOT_SHIPPED = [name for name in network_names() if name not in shipped_networks()]


def _command(command: str, out: Path) -> list[str]:
    """``command`` with the options that make it run on the sample and write under ``out``."""
    if command == "segment":
        return ["segment", str(IMAGE), "--box", *BOX, "--out", str(out / "mask.png")]
    return [command, "--out", str(out / "report")]  # demo and evaluate have defaults for the rest


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert captured.err.count("\n") == 1 and captured.err.startswith("connected-unets: error: "), captured.err
    return captured.err


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "connected_unets.cli", *args], capture_output=True, text=True, env=env, timeout=300)


# --------------------------------------------------------------------------- --device


@pytest.mark.parametrize("device", ["gpu", "mps", "meta"])
@pytest.mark.parametrize("command", ["segment", "demo", "evaluate"])
def test_a_device_that_cannot_run_the_model_is_one_line_and_status_2(command, device, tmp_path, capsys):
    assert main([*_command(command, tmp_path), "--device", device]) == 2
    err = _one_line_error(capsys)
    assert f"device '{device}'" in err and "use auto, cpu, cuda or cuda:N" in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_segmenter_from_bundle_with_device_none_runs_where_auto_does(one_torch_thread):
    from connected_unets.inference import Segmenter
    from connected_unets.io import load_image

    image = load_image(IMAGE)
    box = [[int(v) for v in BOX]]
    unset = Segmenter.from_bundle(device=None)
    auto = Segmenter.from_bundle(device="auto")
    assert unset.device == auto.device == resolve_device("auto")
    got, want = (s.segment_rois(image.array, box, value_range=image.value_range)[0] for s in (unset, auto))
    assert got.found and np.array_equal(got.mask, want.mask)


# --------------------------------------------------------------------------- --model


@pytest.mark.skipif(not NOT_SHIPPED, reason="the bundle ships the weights of every network")
@pytest.mark.parametrize("command", ["segment", "demo", "evaluate"])
def test_a_network_whose_weights_do_not_ship_names_the_file_and_what_ships(command, tmp_path, capsys):
    model = NOT_SHIPPED[0]
    assert main([*_command(command, tmp_path), "--model", model, "--device", "cpu"]) == 2
    err = _one_line_error(capsys)
    assert f"{weights_file(model)}: no shipped weights" in err
    assert f"(networks with shipped weights: {', '.join(shipped_networks())})" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["segment", "demo", "evaluate"])
def test_model_help_says_which_networks_have_shipped_weights(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"Shipped weights: {', '.join(shipped_networks())}" in help_text
    if NOT_SHIPPED:
        assert f"{', '.join(NOT_SHIPPED)}: no shipped weights, give --weights FILE" in help_text
    assert f"(default {DEFAULT_NETWORK})" in help_text


# --------------------------------------------------------------------------- --version and -v


def test_version_prints_the_package_version():
    done = _run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"connected-unets {connected_unets.__version__}"


@pytest.mark.parametrize(
    "args", [["-v", "segment"], ["segment", "-v"], ["segment", "--verbose"], ["--verbose", "segment", "-v"]], ids=["before", "after", "long-after", "both"]
)
def test_verbose_is_accepted_before_and_after_the_command(args):
    where = args.index("segment")
    parsed = build_parser().parse_args([*args[: where + 1], str(IMAGE), "--box", *BOX, "--out", "m.png", *args[where + 1 :]])
    assert parsed.verbose is True and parsed.command == "segment"


def test_verbose_after_segment_logs_which_weights_run_where(tmp_path):
    done = _run("segment", str(IMAGE), "--box", *BOX, "--out", str(tmp_path / "mask.png"), "--device", "cpu", "-v")
    assert done.returncode == 0, done.stderr
    assert f"INFO {weights_file(DEFAULT_NETWORK)} on cpu" in done.stderr  # what -v adds: the model that ran
    quiet = _run("segment", str(IMAGE), "--box", *BOX, "--out", str(tmp_path / "quiet.png"), "--device", "cpu")
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr


# --------------------------------------------------------------------------- lean process

_CONSOLE_THEN_MODULES = """
import sys
from connected_unets.cli import console
from connected_unets.lean_imports import UNUSED_BY_INFERENCE
status = console()
print("loaded:", [name for name in UNUSED_BY_INFERENCE if name in sys.modules])
sys.exit(status)
"""


def test_a_segment_process_skips_the_training_stack_and_draws_the_same_mask(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-c", _CONSOLE_THEN_MODULES, "segment", str(IMAGE), "--box", *BOX, "--out", str(tmp_path / "lean.png"), "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout  # ignite, matplotlib and scipy.signal stayed out
    assert main(["segment", str(IMAGE), "--box", *BOX, "--out", str(tmp_path / "full.png"), "--device", "cpu"]) == 0  # this process has them all
    from connected_unets.io import load_image

    lean, full = load_image(tmp_path / "lean.png").array, load_image(tmp_path / "full.png").array
    assert lean.any() and np.array_equal(lean, full)


def test_a_process_that_already_imported_monai_is_left_as_it_is():
    import monai  # noqa: F401 - what pytest, Slicer and MONAI Label have done before any segment

    from connected_unets.lean_imports import refuse_unused_imports

    finders = list(sys.meta_path)
    assert refuse_unused_imports() is False
    assert sys.meta_path == finders


def test_a_reader_that_goes_away_is_no_error():
    """``connected-unets models | head -1``: the rest of the listing has nowhere to go, and that is fine."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen([sys.executable, "-m", "connected_unets.cli", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdout.close()  # the reader is gone before the first line is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 1
    assert stderr == ""
