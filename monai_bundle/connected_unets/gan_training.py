"""Training a CycleGAN between two ROI domains: the step, the image pool, the schedule, the data, the checks.

``configs/cyclegan_train.yaml`` wires these into a plain ignite ``Engine`` (MONAI's trainers hold
one network and one loss; a CycleGAN updates four networks in two phases per step). Saving,
resuming and the loss CSV are the handlers every training of the bundle uses
(:class:`~connected_unets.handlers.TrainStateSaver`, MONAI's ``CheckpointLoader``,
:class:`~connected_unets.handlers.TrainingLog`), so an interrupted run continues where its last
saved epoch ended and its loss curve goes on without duplicate rows.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine
from monai.losses import PatchAdversarialLoss
from torch import nn

from .data.domains import Domain, check_channels, read_domain
from .data.prepare import check_out_dir
from .io import atomic_output
from .preflight import SetupError, check_writable, checkpoint_bytes, describe_mismatch, remove_stale_temporaries

logger = logging.getLogger(__name__)

__all__ = [
    "GENERATORS",
    "LOSS_KEYS",
    "STATE_KEYS",
    "CycleGANStep",
    "GANSettings",
    "ImagePool",
    "LinearDecay",
    "ScheduleLR",
    "UnpairedDataset",
    "check_setup",
    "load_generators",
    "lr_scheduler",
    "read_domains",
    "read_state",
    "saved_settings",
    "write_domains",
]

GENERATORS = ("gen_ab", "gen_ba")  # A -> B and B -> A, as the training state names them
NETWORKS = (*GENERATORS, "disc_a", "disc_b")
STATE_KEYS = (*NETWORKS, "opt_g", "opt_d", "trainer")
# the step's output, one CSV column each: the generators' total, its three parts, each discriminator's loss
LOSS_KEYS = ("loss", "g_adversarial", "g_cycle", "g_identity", "d_a", "d_b")
ADAM_COPIES = 3  # a state holds each weight and Adam's two moments


class ImagePool:
    """The CycleGAN paper's history of generated images (after Shrivastava et al. 2017).

    Once ``size`` images are stored, each new one is, with probability 0.5, swapped for a stored
    one, which the discriminator then judges instead: it keeps seeing older generator outputs, so
    the two players oscillate less. ``size`` 0 passes images through. Its images are part of the
    training state (``state_dict``), so a resumed run judges the same history.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"image pool size must be >= 0, got {size}")
        self.size = int(size)
        self.images: list[torch.Tensor] = []
        self._rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """The batch the discriminator judges for this batch of new ``images`` (detached)."""
        images = images.detach()
        if self.size == 0:
            return images
        chosen = []
        for image in images:
            image = image[None].clone()
            if len(self.images) < self.size:
                self.images.append(image)
                chosen.append(image)
            elif self._rng.random() < 0.5:
                index = self._rng.randrange(self.size)
                chosen.append(self.images[index])
                self.images[index] = image
            else:
                chosen.append(image)
        return torch.cat(chosen)

    def state_dict(self) -> dict[str, torch.Tensor]:
        stored = torch.cat([image.contiguous() for image in self.images]) if self.images else torch.zeros(0)
        return {"images": stored}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        stored = state["images"]
        self.images = [stored[i : i + 1].clone() for i in range(stored.shape[0])] if stored.numel() else []


class LinearDecay:
    """The CycleGAN paper's schedule as a ``LambdaLR`` factor of the epochs done: the full rate for
    the first ``epochs - decay_epochs`` epochs, then linearly down to 1 / (decay_epochs + 1) of it
    in the last epoch. An object, not a lambda, so the scheduler's state can be saved."""

    def __init__(self, epochs: int, decay_epochs: int) -> None:
        if not 0 <= decay_epochs <= epochs:
            raise ValueError(f"decay_epochs must be between 0 and epochs ({epochs}), got {decay_epochs}")
        self.epochs = int(epochs)
        self.decay_epochs = int(decay_epochs)

    def __call__(self, done: int) -> float:
        return max(0.0, 1.0 - max(0, done + 1 - (self.epochs - self.decay_epochs)) / (self.decay_epochs + 1))


class ScheduleLR(torch.optim.lr_scheduler.LambdaLR):
    """``LambdaLR`` whose saved state leaves its factor out: a resumed run follows the schedule of
    its own config (e.g. a run extended with a larger ``epochs``) from the saved epoch count.
    Plain ``LambdaLR`` would restore the factor object's fields, the old ``epochs`` with them, and
    its linear decay would go on past zero into negative rates. Loading also sets the optimizer's
    rate to this schedule's for the saved epoch count (load it after its optimizer, as the
    training state's order does), so an extended run does not spend an epoch at the old final rate."""

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [None] * len(self.lr_lambdas)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({**state_dict, "lr_lambdas": [None] * len(self.lr_lambdas)})
        rates = [base * factor(self.last_epoch) for base, factor in zip(self.base_lrs, self.lr_lambdas)]
        for group, rate in zip(self.optimizer.param_groups, rates):
            group["lr"] = rate
        self._last_lr = rates


class GANSettings:
    """The sizes a CycleGAN was trained with, kept in its training state (``settings``), so that
    ``connected-unets synthesize`` builds the very networks the weights belong to and shows them
    the ROIs at the training scale, whatever the command line of the training run was."""

    KEYS = ("crop_size", "gan_filters", "residual_blocks", "disc_filters", "disc_layers", "image_channels")

    def __init__(self, **sizes: int) -> None:
        unknown = sorted(set(sizes) - set(self.KEYS))
        if unknown:
            raise ValueError(f"GANSettings: unknown size {unknown[0]!r}; known: {', '.join(self.KEYS)}")
        self.sizes = {key: int(value) for key, value in sizes.items()}

    def state_dict(self) -> dict[str, int]:
        return dict(self.sizes)

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Nothing to restore: a resumed run's networks were checked against the state's shapes."""


def saved_settings(path: str | Path) -> dict[str, int]:
    """The sizes stored in a CycleGAN state file (empty for a file written without them)."""
    settings = read_state(path, GENERATORS).get("settings", {})
    return {key: int(value) for key, value in dict(settings).items() if key in GANSettings.KEYS}


class UnpairedDataset(torch.utils.data.Dataset):
    """Each image of domain A (in the loader's order) with a random image of domain B.

    The domains are unpaired, so there is no correspondence to keep; an epoch is
    max(len(A), len(B)) steps, the shorter domain repeating (the CycleGAN paper's loader).
    Items are ``{"a": tensor, "b": tensor}``: the images only, which collate whatever else the
    datalists hold."""

    def __init__(self, domain_a: torch.utils.data.Dataset, domain_b: torch.utils.data.Dataset, seed: int = 0, key: str = "image") -> None:
        self.domain_a, self.domain_b, self.key = domain_a, domain_b, key
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return max(len(self.domain_a), len(self.domain_b))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        partner = self._rng.randrange(len(self.domain_b))
        return {"a": self.domain_a[index % len(self.domain_a)][self.key], "b": self.domain_b[partner][self.key]}


class CycleGANStep:
    """One CycleGAN iteration, an ignite process function: the generators' update, then the discriminators'.

    Generators (``gen_ab``: A -> B, ``gen_ba``: B -> A, one optimizer ``opt_g``) minimise the
    least-squares adversarial loss against both discriminators + ``cycle_weight`` x L1(A, G_ba(G_ab(A)))
    and L1(B, G_ab(G_ba(B))) + ``identity_weight`` x L1(B, G_ab(B)) and L1(A, G_ba(A)); the
    discriminators (``disc_a``, ``disc_b``, optimizer ``opt_d``) minimise 0.5 x (LS(real, 1) +
    LS(pooled fake, 0)) each. The networks run under bf16 autocast when ``precision`` is bf16 and
    channels_last when asked; the losses are fp32. Returns :data:`LOSS_KEYS` as floats.
    """

    def __init__(
        self,
        gen_ab: nn.Module,
        gen_ba: nn.Module,
        disc_a: nn.Module,
        disc_b: nn.Module,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        pool_a: ImagePool,
        pool_b: ImagePool,
        cycle_weight: float = 10.0,
        identity_weight: float = 5.0,
        precision: str = "fp32",
        channels_last: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision {precision!r}: resolve 'auto' first (connected_unets.precision.resolve_precision)")
        self.gen_ab, self.gen_ba, self.disc_a, self.disc_b = gen_ab, gen_ba, disc_a, disc_b
        self.opt_g, self.opt_d = opt_g, opt_d
        self.pool_a, self.pool_b = pool_a, pool_b
        self.cycle_weight, self.identity_weight = float(cycle_weight), float(identity_weight)
        self.precision, self.channels_last, self.device = precision, bool(channels_last), torch.device(device)
        # raw scores into the mean squared error, as the tutorial's LSGAN (MONAI's default adds a leaky ReLU)
        self.adversarial = PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)
        self.l1 = nn.L1Loss()

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        images = torch.as_tensor(images).to(self.device, dtype=torch.float32)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _ls(self, scores: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        return self.adversarial(scores.float(), target_is_real=real, for_discriminator=for_discriminator)

    def __call__(self, engine: Engine, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        real_a, real_b = self._input(batch["a"]), self._input(batch["b"])
        for network in (self.gen_ab, self.gen_ba, self.disc_a, self.disc_b):
            network.train()

        self._discriminators_learn(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            fake_b, fake_a = self.gen_ab(real_a), self.gen_ba(real_b)
            rec_a, rec_b = self.gen_ba(fake_b), self.gen_ab(fake_a)
            adversarial = self._ls(self.disc_b(fake_b), True, False) + self._ls(self.disc_a(fake_a), True, False)
            identity = torch.zeros((), device=self.device)
            if self.identity_weight > 0:
                identity = self.l1(self.gen_ab(real_b).float(), real_b) + self.l1(self.gen_ba(real_a).float(), real_a)
        cycle = self.l1(rec_a.float(), real_a) + self.l1(rec_b.float(), real_b)
        g_loss = adversarial + self.cycle_weight * cycle + self.identity_weight * identity
        g_loss.backward()
        self.opt_g.step()

        self._discriminators_learn(True)
        self.opt_d.zero_grad(set_to_none=True)
        judged_a, judged_b = self.pool_a.query(fake_a.float()), self.pool_b.query(fake_b.float())
        with self._autocast():
            d_a = 0.5 * (self._ls(self.disc_a(real_a), True, True) + self._ls(self.disc_a(self._input(judged_a)), False, True))
            d_b = 0.5 * (self._ls(self.disc_b(real_b), True, True) + self._ls(self.disc_b(self._input(judged_b)), False, True))
        (d_a + d_b).backward()
        self.opt_d.step()
        values = (g_loss, adversarial, cycle, identity, d_a, d_b)
        return {key: float(value.detach()) for key, value in zip(LOSS_KEYS, values)}

    def _discriminators_learn(self, on: bool) -> None:
        """Discriminator weights need no gradient while the generators learn (saves their backward)."""
        for network in (self.disc_a, self.disc_b):
            network.requires_grad_(on)


# --------------------------------------------------------------------------- checks before a run


def read_domains(domain_a: str | Path, domain_b: str | Path, splits: str | Sequence[str] = "training", channels: int = 1) -> tuple[Domain, Domain]:
    """Both domains (datalists or folders of ROIs), each with images of ``channels`` channels;
    a one-line :class:`SetupError` otherwise (nothing is written before this passes)."""
    try:
        domains = read_domain(domain_a, splits, "A"), read_domain(domain_b, splits, "B")
        check_channels(domains, channels)
    except (ValueError, OSError) as err:
        raise SetupError(str(err)) from None
    return domains


def check_setup(domains: Sequence[Domain], output_dir: str | Path, state_file: str | Path, train_state: Mapping[str, Any], resume: bool = True) -> None:
    """Refuse, in one line and before anything is written: an output folder inside (or holding) a
    domain's folder (a folder domain would read the run's pictures as images), one that cannot be
    written or lacks room for a state, and a state file to resume from that lacks an entry of
    ``train_state`` or holds networks of other sizes. Removes what a killed save left behind."""
    try:
        check_out_dir(output_dir, {folder for domain in domains for folder in domain.folders})
    except ValueError as err:
        raise SetupError(str(err)) from None
    networks = {name: obj for name, obj in train_state.items() if isinstance(obj, nn.Module)}
    check_writable(output_dir, sum(checkpoint_bytes(network, ADAM_COPIES) for network in networks.values()), "output_dir")
    if resume and Path(state_file).is_file():
        state = read_state(state_file, NETWORKS)
        _check_networks(state_file, state, networks)
        lacking = [key for key in train_state if key not in state]
        if lacking:
            raise SetupError(
                f"{state_file}: saved without '{lacking[0]}' (another lr_schedule, or a state of an older version); "
                "resume with the settings that wrote it or train into another output_dir"
            )
    remove_stale_temporaries(output_dir)


def lr_scheduler(optimizer: torch.optim.Optimizer, schedule: str, epochs: int, decay_epochs: int) -> ScheduleLR | None:
    """None for ``constant`` (the tutorial's rate throughout), a :class:`LinearDecay`
    :class:`ScheduleLR` for ``linear``; a one-line :class:`SetupError` for anything else."""
    if schedule == "constant":
        return None
    if schedule != "linear":
        raise SetupError(f"lr_schedule {schedule!r}: choose constant or linear")
    try:
        return ScheduleLR(optimizer, LinearDecay(epochs, decay_epochs))
    except ValueError as err:
        raise SetupError(str(err)) from None


def write_domains(domains: Sequence[Domain], output_dir: str | Path) -> Path:
    """``<output_dir>/cyclegan_domains.json``: the images of each domain this run trains on (a
    datalist-shaped record, which ``run.json`` checksums)."""
    path = Path(output_dir) / "cyclegan_domains.json"
    record = {domain.name: [{"image": item["image"]} for item in domain.items] for domain in domains}
    record["sources"] = [{"domain": domain.name, "source": str(domain.source)} for domain in domains]
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return path


def read_state(path: str | Path, required: Sequence[str]) -> Mapping[str, Any]:
    """The content of a CycleGAN state (or generators) file, refused in one line when it cannot be
    read or lacks one of ``required`` (e.g. a segmentation model's weights)."""
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"{path}: CycleGAN weights not found (train them with configs/cyclegan_train.yaml, see docs/synthesis.md)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a file that is not its own
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SetupError(f"{path}: cannot be read as a PyTorch file, truncated or corrupt? ({first})") from None
    missing = [key for key in required if not isinstance(state, Mapping) or key not in state]
    if missing:
        found = ", ".join(list(map(str, state))[:4]) + (", ..." if len(state) > 4 else "") if isinstance(state, Mapping) else type(state).__name__
        raise SetupError(f"{path}: not a CycleGAN state (expected {', '.join(required)}; found {found or 'nothing'})")
    return state


def _check_networks(path: str | Path, state: Mapping[str, Any], networks: Mapping[str, nn.Module]) -> None:
    for name, network in networks.items():
        mismatch = describe_mismatch(network.state_dict(), state[name])
        if mismatch:
            raise SetupError(
                f"{path}: {name} is not a {type(network).__name__} of these sizes ({mismatch}); use the settings that wrote it "
                "(gan_filters, residual_blocks, disc_filters, disc_layers) or another output_dir"
            )


def load_generators(path: str | Path, gen_ab: nn.Module, gen_ba: nn.Module) -> None:
    """Load both generators from a CycleGAN training state (or any file holding ``gen_ab`` and
    ``gen_ba`` state_dicts); one-line :class:`SetupError` for a file of another architecture."""
    networks = {"gen_ab": gen_ab, "gen_ba": gen_ba}
    state = read_state(path, GENERATORS)
    _check_networks(path, state, networks)
    for name, network in networks.items():
        network.load_state_dict(state[name])
    logger.info("generators loaded from %s", path)
