"""What the tests that train tiny models through ``python -m monai.bundle run`` share
(tests/test_bundle.py, tests/test_training_reliability.py): the command line of a tiny run
(features 8-16-32-64, 32 x 32 ROIs, batch 2), the folders a run writes, and the checks of what
it wrote."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from connected_unets.networks import get_network

TINY = [8, 16, 32, 64]
BATCH = 2
# command-line overrides for a tiny, fast model; fire parses the list literals
CLI_TINY = [
    "--roi_size", "[32,32]",
    "--network_def#features", "[8,16,32,64]",
    "--num_workers", "0",
    "--batch_size", str(BATCH),
]  # fmt: skip
TRAIN_CONFIGS = "['configs/common.yaml','configs/train.yaml']"
STATE_NAME = "connected_resunets_train_state.pt"  # <network_name>_train_state.pt in output_dir


def train_args(root: Path, epochs: int, *extra: str, dataset: Path | None = None, config_file: str = TRAIN_CONFIGS) -> list[str]:
    """``run --config_file <config_file> <CLI_TINY> [--dataset_dir <dataset>] --epochs <epochs>
    --output_dir <root>/eval --ckpt_dir <root>/models <extra>``, for ``python -m monai.bundle``."""
    dataset_dir = ["--dataset_dir", str(dataset)] if dataset is not None else []
    return [
        "run", "--config_file", config_file, *CLI_TINY, *dataset_dir,
        "--epochs", str(epochs),
        "--output_dir", str(root / "eval"), "--ckpt_dir", str(root / "models"), *extra,
    ]  # fmt: skip


def _under_root(*parts: str) -> property:
    return property(lambda folders: folders.root.joinpath(*parts))


@dataclass
class RunFolders:
    """A training run's folders: --output_dir root/eval, --ckpt_dir root/models (see train_args)."""

    root: Path

    output_dir = _under_root("eval")
    ckpt_dir = _under_root("models")
    model = _under_root("models", "model.pt")
    state_file = _under_root("eval", STATE_NAME)
    train_log = _under_root("eval", "connected_resunets_train_log.csv")
    val_log = _under_root("eval", "connected_resunets_val_log.csv")

    @property
    def score(self) -> dict:
        return json.loads((self.ckpt_dir / "model.json").read_text())


def tiny_network(name: str = "connected_resunets") -> torch.nn.Module:
    return get_network(name, in_channels=3, out_channels=1, features=TINY)


def load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(first: dict, second: dict) -> None:
    assert list(first) == list(second)
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def temporary_files(*folders: Path) -> list[Path]:
    """Leftovers of atomic writes (connected_unets.io.atomic_output) in those of ``folders`` that exist."""
    return [p for folder in folders if folder.is_dir() for p in folder.iterdir() if p.name.startswith(".tmp-")]


def train_log_lines(log: str, epochs: int) -> list[tuple[int, int]]:
    """(epoch, iteration in epoch) of every StatsHandler training line 'Epoch: e/E, Iter: i/N -- train_loss'."""
    return [(int(e), int(i)) for e, i in re.findall(rf"Epoch: (\d+)/{epochs}, Iter: (\d+)/\d+ -- train_loss", log)]
