"""Synthetic training data: ROIs of one domain restyled as another's by a trained CycleGAN, masks carried over.

:func:`synthesize` (``connected-unets synthesize``, ``configs/cyclegan_generate.yaml``) translates
every ROI of a datalist with the A -> B generator at the pixel scale training used
(:func:`~connected_unets.transforms.gan_view_shape`), so each translated image has its source's
shape and the source's mask file is copied unchanged. It writes ``images/``, ``labels/``, a
``datalist.json`` whose items are marked ``synthetic``, ``translation.csv`` (per ROI: SSIM of
source vs translated, cycle reconstruction error), ``synthesis.json`` (what made it) and
``examples.png`` (source / translated / reconstructed) for a person to look at. All checks come
before the first write; every file is written atomically and the datalist last (an earlier
run's datalist in the folder is removed first, so a datalist always names a finished synthesis).

:func:`with_synthetic` and :func:`check_synthetic` are ``train.yaml``'s side: synthetic items join
the training split only, and a synthetic datalist holding a patient that the real datalist keeps
out of training is refused.
"""

from __future__ import annotations

import csv
import datetime
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .data.domains import ALL_SPLITS, DATALIST, TRAINING, Domain, check_channels, held_out_patients, read_domain
from .data.prepare import check_out_dir
from .io import atomic_output, load_image, load_mask
from .preflight import SetupError, check_writable
from .transforms import from_gan_range, gan_range, gan_view_shape, resize_gan
from .translation_quality import cycle_error, ssim

logger = logging.getLogger(__name__)

__all__ = ["SYNTHETIC_KEY", "check_synthetic", "progress_bar", "synthesize", "translate", "with_synthetic", "write_examples"]

SYNTHETIC_KEY = "synthetic"  # the datalist field that marks a translated item
TRANSLATION_CSV = "translation.csv"
EXAMPLES_PNG = "examples.png"
CSV_FIELDS = ("image", "translated_from", "patient", "lesion", "ssim", "cycle_mae")


@torch.no_grad()
def translate(
    image: np.ndarray, gen_ab: nn.Module, gen_ba: nn.Module, min_size: int, device: torch.device | str = "cpu", precision: str = "fp32"
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` ((H, W) in [-1, 1]) in B's style and that translation taken back to A's style,
    both (H, W) in [-1, 1]. The generators see the image as in training: enlarged to
    :func:`gan_view_shape` when small, reflect-padded to a multiple of their divisor; the
    results are cropped and resized back to (H, W)."""
    source = torch.as_tensor(image, dtype=torch.float32)[None]
    shape = tuple(source.shape[-2:])
    view = gan_view_shape(shape, min_size)
    seen = resize_gan(source, view) if view != shape else source
    divisor = int(getattr(gen_ab, "divisor", 1))
    padding = (0, -view[1] % divisor, 0, -view[0] % divisor)
    batch = F.pad(seen[None], padding, mode="reflect").to(device)
    device_type = torch.device(device).type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        fake = gen_ab(batch)
        back = gen_ba(fake)
    results = []
    for output in (fake, back):
        plane = output.float()[0, :, : view[0], : view[1]].cpu()
        results.append((resize_gan(plane, shape) if view != shape else plane)[0].numpy())
    return results[0], results[1]


def synthesize(
    source: str | Path,
    out_dir: str | Path,
    gen_ab: nn.Module,
    gen_ba: nn.Module,
    splits: str | Sequence[str] = ALL_SPLITS,
    min_size: int = 256,
    channels: int = 1,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    examples: int = 8,
    weights: str | Path | None = None,
    progress: Callable[[Iterable], Iterable] = iter,
) -> dict[str, Any]:
    """Translate every ROI of the datalist ``source`` (``splits`` of it) into ``out_dir`` (see the
    module docstring); returns the synthetic datalist. One-line :class:`SetupError` before
    anything is written for: a source without images or masks, an image of another channel count,
    an output folder inside (or holding) an input folder, or one that cannot be written."""
    out = Path(out_dir)
    domain = _checked_source(source, splits, channels, out)
    # a datalist names a finished synthesis only: the one of an earlier run into this folder goes
    # first, so that a run stopped half-way leaves none pointing at a mix of old and new images
    (out / DATALIST).unlink(missing_ok=True)
    for network in (gen_ab, gen_ba):
        network.eval()
    names = _unique_names(domain.items)
    rows, entries, picked = [], [], _example_indices(len(domain.items), examples)
    panels = []
    for index, (item, name) in enumerate(progress(list(zip(domain.items, names)))):
        loaded = load_image(item["image"])
        real = gan_range(loaded)
        fake, back = translate(real, gen_ab, gen_ba, min_size, device, precision)
        peak = 65535 if loaded.value_range and loaded.value_range[1] > 255 else 255
        image_file, label_file = f"images/{name}.png", f"labels/{name}{_suffix(item['label'])}"
        with atomic_output(out / image_file) as tmp:
            Image.fromarray(from_gan_range(fake, peak)).save(tmp, format="PNG")
        with atomic_output(out / label_file) as tmp:
            shutil.copyfile(item["label"], tmp)  # the source mask, byte for byte
        translated_from = os.path.relpath(item["image"], out.resolve())
        entries.append(_entry(item, image_file, label_file, translated_from))
        rows.append({"image": image_file, "translated_from": translated_from, "patient": item.get("patient", ""),
                     "lesion": item.get("lesion", name), "ssim": f"{ssim(real, fake):.6f}", "cycle_mae": f"{cycle_error(real, back):.6f}"})  # fmt: skip
        if index in picked:
            panels.append((name, real, fake, back, load_mask(item["label"])))
    _write_csv(out / TRANSLATION_CSV, rows)
    if panels:
        write_examples(panels, out / EXAMPLES_PNG)
    _write_json(out / "synthesis.json", _record(domain, weights, splits, min_size, precision, rows))
    datalist = {TRAINING: entries, "skipped": []}
    _write_json(out / DATALIST, datalist)
    logger.info("%d ROIs of %s translated into %s", len(entries), domain.source, out)
    return datalist


def progress_bar(items: Iterable) -> Iterable:
    """A tqdm bar over the ROIs being translated."""
    from tqdm import tqdm

    return tqdm(items, desc="translating", unit="ROI")


def _checked_source(source: str | Path, splits: str | Sequence[str], channels: int, out: Path) -> Domain:
    try:
        domain = read_domain(source, splits, "A")
        unmasked = [item["image"] for item in domain.items if "label" not in item]
        if unmasked:
            raise ValueError(f"{source}: synthesize needs ROIs with masks (a datalist written by `connected-unets prepare`); {unmasked[0]} has none")
        missing = [item["label"] for item in domain.items if not Path(item["label"]).is_file()]
        if missing:
            raise ValueError(f"{missing[0]}: mask file not found ({len(missing)} of the source's masks are missing)")
        check_channels([domain], channels)
        check_out_dir(out, domain.folders | {Path(item["label"]).parent for item in domain.items})
    except (ValueError, OSError) as err:
        raise SetupError(str(err)) from None
    check_writable(out, 0, "output folder")
    return domain


def _unique_names(items: Sequence[dict[str, Any]]) -> list[str]:
    """File names (no suffix) of the translated images: the source image's, numbered when two agree."""
    names, seen = [], set()
    for item in items:
        stem = base = Path(item["image"]).name.split(".")[0]
        number = 2
        while stem.casefold() in seen:
            stem, number = f"{base}_{number}", number + 1
        seen.add(stem.casefold())
        names.append(stem)
    return names


def _suffix(path: str | Path) -> str:
    name = Path(path).name
    return name[name.index(".") :] if "." in name else ""


def _entry(item: dict[str, Any], image_file: str, label_file: str, translated_from: str) -> dict[str, Any]:
    """The synthetic datalist item: the source item's fields (patient, lesion, box, ...), the new
    files, the mark and where it came from."""
    kept = {key: value for key, value in item.items() if key not in ("image", "label", "split")}
    return {"image": image_file, "label": label_file, **kept, SYNTHETIC_KEY: True, "translated_from": translated_from, "source_split": item.get("split", "")}


def _example_indices(count: int, examples: int) -> set[int]:
    """``examples`` indices spread evenly over ``count`` items (all of them when there are fewer)."""
    if count == 0 or examples <= 0:
        return set()
    return {int(round(i)) for i in np.linspace(0, count - 1, min(examples, count))}


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def _write_json(path: Path, record: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1))


def _record(domain: Domain, weights: str | Path | None, splits: Any, min_size: int, precision: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ssims, errors = ([float(row[key]) for row in rows] for key in ("ssim", "cycle_mae"))
    return {
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": str(domain.source),
        "splits": splits,
        "weights": None if weights is None else str(weights),
        "min_size": min_size,
        "precision": precision,
        "rois": len(rows),
        "mean_ssim": float(np.mean(ssims)) if ssims else None,
        "mean_cycle_mae": float(np.mean(errors)) if errors else None,
    }


def write_examples(panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """One row per example: source, translated (with the carried-over mask outlined) and
    reconstructed, each (H, W) in [-1, 1] shown on one grey scale, so that style differences show."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 2.6 * len(panels)), layout="constrained")
    titles = ("source (A)", "translated (A -> B)", "reconstructed (B -> A)")
    for row, (name, real, fake, back, mask) in enumerate(panels):
        for column, image in enumerate((real, fake, back)):
            axes = figure.add_subplot(len(panels), 3, 3 * row + column + 1)
            axes.imshow(image, cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
            if column == 1 and mask.any() and not mask.all() and mask.shape == image.shape:
                axes.contour(mask.astype(np.float32), levels=[0.5], colors=["#3cdc3c"], linewidths=1.0)
            axes.set_title(f"{titles[column]}\n{name}" if column == 0 else titles[column], fontsize=8)
            axes.set_axis_off()
    FigureCanvasAgg(figure)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    return Path(path)


# --------------------------------------------------------------------------- joint training (train.yaml)


def _synthetic_items(synthetic_datalist: str | Path) -> list[dict[str, Any]]:
    """The items of a synthetic datalist's training split, paths made absolute; ValueError (one line)
    for a file that is none or an item not marked synthetic."""
    path = Path(synthetic_datalist)
    path = path / DATALIST if path.is_dir() else path
    try:
        datalist = json.loads(path.read_text())
        items = datalist[TRAINING]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"synthetic_datalist {path}: not a datalist with a '{TRAINING}' split ({' '.join(str(err).split())})") from None
    unmarked = [item for item in items if not (isinstance(item, dict) and item.get(SYNTHETIC_KEY) is True)]
    if unmarked:
        raise ValueError(f"synthetic_datalist {path}: {len(unmarked)} item(s) not marked '{SYNTHETIC_KEY}': true (write it with `connected-unets synthesize`)")
    return [{**item, **{key: str((path.parent / item[key]).resolve()) for key in ("image", "label") if key in item}} for item in items]


def check_synthetic(synthetic_datalist: str | Path | None, datalist_file: str | Path) -> None:
    """Refuse, in one line before training, a synthetic datalist that cannot be read, holds no item,
    an item not marked synthetic or a missing file, or a patient that ``datalist_file`` keeps out
    of training (a restyled copy of a validation lesion would be trained on)."""
    if synthetic_datalist is None:
        return
    try:
        items = _synthetic_items(synthetic_datalist)
        held_out = held_out_patients(datalist_file)
    except ValueError as err:
        raise SetupError(str(err)) from None
    if not items:
        raise SetupError(f"synthetic_datalist {synthetic_datalist}: no items in its '{TRAINING}' split")
    missing = [item[key] for item in items for key in ("image", "label") if not Path(item[key]).is_file()]
    if missing:
        raise SetupError(f"synthetic_datalist {synthetic_datalist}: {missing[0]} not found ({len(missing)} file(s) missing)")
    leaked = sorted({str(item.get("patient")) for item in items if str(item.get("patient")) in held_out})
    if leaked:
        split = held_out[leaked[0]]
        raise SetupError(
            f"synthetic_datalist {synthetic_datalist}: {len(leaked)} of its patients are held out of training in {datalist_file} "
            f"(e.g. {leaked[0]}, '{split}'); prepare the source domain without them (scripts/prepare_cyclegan_domains.py)"
        )


def with_synthetic(real_items: Sequence[dict[str, Any]], synthetic_datalist: str | Path | None) -> list[dict[str, Any]]:
    """The training items: ``real_items`` as they are without a synthetic datalist; else both, each
    marked ``synthetic`` True or False and the synthetic ones cut to the real items' fields, so
    that a batch collates whichever mix it draws. Validation and test never call this."""
    if synthetic_datalist is None:
        return list(real_items)
    synthetic = _synthetic_items(synthetic_datalist)
    fields = list(dict.fromkeys(key for item in real_items for key in item))
    marked = [{**item, SYNTHETIC_KEY: False} for item in real_items]
    marked += [{**{key: item.get(key, "") for key in fields}, SYNTHETIC_KEY: True} for item in synthetic]
    logger.info("training on %d real and %d synthetic items (%s)", len(real_items), len(synthetic), synthetic_datalist)
    return marked
