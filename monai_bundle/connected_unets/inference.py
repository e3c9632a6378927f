"""One inference function for every front door: ``Segmenter.segment(image, boxes)``.

The Segmenter takes its network, pre-processing, inferer and post-processing from the bundle's
``configs/inference.yaml`` so that the CLI, ``monai.bundle run`` and Slicer produce the
same mask for the same image and boxes.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import Inferer

from .bundle import DEFAULT_NETWORK, display_name, open_config, resolve_device, shipped_networks, weights_file
from .fast import fast_if_equivalent
from .roi import validate_box

logger = logging.getLogger(__name__)

class ROIBatchInferer(Inferer):
    """Run a (B, N, C, H, W) stack of N ROIs per image through the network as one (B*N) batch."""

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:
        if inputs.ndim == 4:
            return network(inputs, *args, **kwargs)
        batch, rois = inputs.shape[:2]
        logits = network(inputs.reshape(batch * rois, *inputs.shape[2:]), *args, **kwargs)
        return logits.reshape(batch, rois, *logits.shape[1:])


def samples_datalist(samples_file: str | Path) -> list[dict[str, Any]]:
    """The inference datalist of a ``samples.json`` (image, boxes), paths made absolute."""
    samples_file = Path(samples_file)
    samples = json.loads(samples_file.read_text())
    return [{"image": str(samples_file.parent / s["image"]), "boxes": s["boxes"]} for s in samples]


def load_weights(network: torch.nn.Module, weights: str | Path) -> None:
    """Load a plain state_dict (``weights_only``), keys matching exactly; one-line errors."""
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights not found (train them with scripts/train.sh, see README)")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (RuntimeError, KeyError, ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        logger.debug("torch.load(%s) failed: %s", weights, err)  # torch's own text is long and internal
        raise ValueError(f"{weights}: not a PyTorch weights file (expected a state_dict saved by torch.save)") from err
    if not isinstance(state, Mapping):
        raise ValueError(f"{weights}: holds a {type(state).__name__}, not a state_dict of {type(network).__name__}")
    try:
        network.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{weights}: not weights of {type(network).__name__} ({first_line})") from err


class Segmenter:
    """Segments masses inside ROI boxes of a full mammogram, with the bundle's pipeline."""

    def __init__(
        self,
        network: torch.nn.Module,
        preprocessing: Callable[[dict], dict],
        inferer: Callable[..., torch.Tensor],
        postprocessing: Callable[[dict], dict],
        device: torch.device,
        amp: bool = False,
    ) -> None:
        self.network = network.to(device).eval()
        self.preprocessing = preprocessing
        self.inferer = inferer
        self.postprocessing = postprocessing
        self.device = device
        self.amp = amp and device.type == "cuda"

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path | None = None,
        model: str = DEFAULT_NETWORK,
        device: str | torch.device = "auto",
        weights: str | Path | None = None,
        threshold: float | None = None,
        fast: bool = True,
    ) -> Segmenter:
        """Build the network, transforms and inferer of ``configs/common.yaml`` + ``inference.yaml``
        and load the weights (the catalogue's file of ``model``, :mod:`connected_unets.bundle`, or ``weights``).

        ``fast`` runs a BatchNorm-folded channels_last copy of the network (faster on CPU, see
        :mod:`connected_unets.fast`) when its probabilities match the plain network's within 1e-4
        on a probe input, else the plain network."""
        if weights is None:
            weights = weights_file(model, bundle_dir)
            if not weights.is_file():
                shipped = ", ".join(shipped_networks(bundle_dir)) or "none"
                raise FileNotFoundError(f"{weights}: no shipped weights for {display_name(model)} (networks with shipped weights: {shipped}); give a weights file")
        torch_device = resolve_device(device)
        overrides: dict[str, Any] = {"network_name": model, "device": torch_device}
        if threshold is not None:
            if not 0.0 < float(threshold) < 1.0:
                raise ValueError(f"threshold {threshold}: a probability threshold must lie strictly between 0 and 1")
            overrides["threshold"] = float(threshold)
        parser = open_config(["inference.yaml"], bundle_dir, overrides)
        network = parser.get_parsed_content("network_def")
        load_weights(network, weights)
        if fast:
            network = fast_if_equivalent(network, torch_device)
        return cls(
            network=network,
            preprocessing=parser.get_parsed_content("preprocessing"),
            inferer=parser.get_parsed_content("inferer"),
            postprocessing=parser.get_parsed_content("postprocessing"),
            device=torch_device,
            amp=bool(parser.get_parsed_content("amp")),
        )

    def segment(self, image: np.ndarray, boxes: Sequence[Sequence[float]], source: str = "image") -> np.ndarray:
        """Mask (uint8, 0 background / 1 mass) of ``image``'s shape for the masses in ``boxes``:
        the union of :meth:`segment_each`. All boxes go through the network as one batch."""
        return np.maximum.reduce(self.segment_each(image, boxes, source))

    def segment_each(self, image: np.ndarray, boxes: Sequence[Sequence[float]], source: str = "image") -> list[np.ndarray]:
        """One mask (uint8 0/1, ``image``'s shape) per box, all boxes through the network as ONE batch.

        ``image`` is a 2-D array of any dtype (a full mammogram); ``boxes`` are (x0, y0, x1, y1)
        pixel boxes, end exclusive. Each ROI's prediction is post-processed alone (the Slicer
        module makes one segment per ROI from these).
        """
        array = np.asarray(image)
        if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
            array = np.squeeze(array, axis=0 if array.shape[0] == 1 else -1)
        if array.ndim != 2:
            raise ValueError(f"{source}: expected a 2-D grayscale image, got an array of shape {array.shape}")
        if len(boxes) == 0:
            raise ValueError(f"{source}: no ROI box given")
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise ValueError(f"{source}: pixel values include NaN or infinity")
        checked = [list(validate_box(box, array.shape, source)) for box in boxes]
        for x0, y0, x1, y1 in checked:
            inside = array[y0:y1, x0:x1]
            if inside.min() == inside.max():  # e.g. a box drawn on the black background
                raise ValueError(f"{source}: box {[x0, y0, x1, y1]} covers only pixels of one value ({inside.min():g}): nothing to segment")
        data = self.preprocessing({"image": array.astype(np.float32), "boxes": checked, "image_path": source})
        inputs = torch.as_tensor(data["image"])[None].to(self.device)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=self.amp):
            logits = self.inferer(inputs, self.network)
        logits = logits[0].float().cpu()
        masks = []
        for index in range(len(checked)):
            one = {**data, "pred": logits[index : index + 1], "roi_box": data["roi_box"][index : index + 1]}
            masks.append(np.asarray(torch.as_tensor(self.postprocessing(one)["pred"]))[0].astype(np.uint8))
        return masks
