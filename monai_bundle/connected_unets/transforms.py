"""Every MONAI transform of the bundle (the configs' transform ``_target_`` entries), with the array
functions they apply.

The paper's ROI pipeline: full mammogram + box -> ROI crop with context margin (randomly loosened
in training) -> resize to 256 x 256 (bicubic when enlarging, area when shrinking, nearest for
masks) -> histogram equalisation to [0, 1] (MONAI ``HistogramNormalized``) -> network. After the
network the ROI probability map is resized back to the crop and pasted into a full-size mask.

The mass detector's input: :class:`LoadWorkingImaged` (the whole picture at its working size).

The CycleGAN's input (``configs/cyclegan_train.yaml`` and :mod:`connected_unets.synthesis`):
pixel values in [-1, 1] (:func:`gan_range`, back with :func:`from_gan_range`) and the size it
meets an ROI at (:func:`gan_view_shape`, :func:`resize_gan`), so the generators translate every ROI
at the value range and scale they learnt; :class:`LoadGANImaged` and :class:`MinSizeResized` apply
them in training.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from skimage import exposure

from .io import LoadedImage, load_image, load_mask
from .roi import MarginRule, expand_box, mask_box, paste, validate_box


def _as_chw(value: Any) -> torch.Tensor:
    """A 2-D array or a (1, H, W) array as a float32 (1, H, W) tensor."""
    tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim != 3 or tensor.shape[0] != 1:
        raise ValueError(f"expected a 2-D grayscale image, got an array of shape {tuple(tensor.shape)}")
    return tensor.float()


class LoadMammogramd(MapTransform):
    """Read the image (and mask) of a record: file paths go through :mod:`connected_unets.io`
    (DICOM VOI LUT, MONOCHROME1, ...); arrays already in memory pass through. Output (1, H, W) float32;
    masks become {0, 1}. ``image_size`` records the full image's (H, W) for pasting back and
    ``<key>_path`` the file a value was read from (for messages and output names)."""

    def __init__(self, keys: KeysCollection, label_keys: KeysCollection = (), allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.label_keys = {label_keys} if isinstance(label_keys, str) else set(label_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
                d[f"{key}_path"] = str(value)
                value = load_mask(value) if key in self.label_keys else load_image(value).array
            tensor = _as_chw(value)
            if key in self.label_keys:
                tensor = (tensor > 0.5 * tensor.max().clamp(min=1e-6)).float()
            elif not torch.isfinite(tensor).all():
                raise ValueError(f"{d.get(f'{key}_path', key)}: image contains NaN or infinite values")
            d[key] = tensor
        first = next(iter(self.key_iterator(d)), None)
        if first is not None:
            d["image_size"] = list(d[first].shape[-2:])
        return d


class CropROId(MapTransform, RandomizableTransform):
    """Crop the ROI of one lesion: its box plus the paper's context margin (:class:`MarginRule`).

    The box comes from ``box_key`` or, when absent, from the bounding box of ``label_key``.
    ``loosen`` = (low, high) draws, with probability ``prob``, an extra margin per side uniformly in
    that range (fractions of the box size): training against loosely drawn boxes. ``loosen_common``
    = (low, high) adds, on the same draws, ONE margin for all four sides: a box loose all round, as
    drawn around the whole mass, is then common in training rather than the rare case of four
    independent draws. ``extra_margin`` adds a fixed loosening (evaluation of loose boxes). Records
    the crop as ``roi_box``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        box_key: str = "box",
        label_key: str | None = "label",
        relative_margin: float = 0.1,
        min_margin_fraction: float = 0.01,
        loosen: Sequence[float] = (0.0, 0.0),
        prob: float = 0.0,
        loosen_common: Sequence[float] = (0.0, 0.0),
        extra_margin: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.box_key = box_key
        self.label_key = label_key
        self.rule = MarginRule(relative_margin, min_margin_fraction)
        self.loosen = (float(loosen[0]), float(loosen[1]))
        self.loosen_common = (float(loosen_common[0]), float(loosen_common[1]))
        self.extra_margin = float(extra_margin)
        lowest = self.extra_margin + min(self.loosen) + min(self.loosen_common)
        if not -0.5 < lowest or not np.isfinite([self.extra_margin, *self.loosen, *self.loosen_common]).all():
            raise ValueError(
                f"CropROId: extra_margin {self.extra_margin}, loosen {self.loosen} and loosen_common {self.loosen_common} "
                "must be finite and add up to more than -0.5 per side "
                "(a box shrunk by half its size per side is empty)"
            )

    def _lesion_box(self, d: Mapping[Hashable, Any], image_shape: Sequence[int]) -> tuple[int, int, int, int]:
        source = str(d.get("image_path", "image"))
        box = d.get(self.box_key)
        if box is None:
            if self.label_key is None or self.label_key not in d:
                raise ValueError(f"{source}: no box given and no mask to derive one from")
            return mask_box(np.asarray(d[self.label_key][0]) > 0)
        return validate_box([float(v) for v in np.asarray(box).ravel()], image_shape, source)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        first = next(iter(self.key_iterator(d)))
        image_shape = d[first].shape[-2:]
        box = self._lesion_box(d, image_shape)
        self.randomize(None)
        extra = np.full(4, self.extra_margin)
        if self._do_transform:
            extra = extra + self.R.uniform(self.loosen[0], self.loosen[1], size=4)
            if self.loosen_common != (0.0, 0.0):  # no draw otherwise: runs without it keep their random sequence
                extra = extra + self.R.uniform(*self.loosen_common)
        x0, y0, x1, y1 = expand_box(box, image_shape, self.rule, extra.tolist())
        for key in self.key_iterator(d):
            d[key] = d[key][..., y0:y1, x0:x1]
        d["roi_box"] = [x0, y0, x1, y1]
        return d


def _resize(image: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """Resize a (C, H, W) tensor with torch; bicubic output is clipped to the input's range."""
    batch = image[None].float()
    if mode == "bicubic":
        out = F.interpolate(batch, size=tuple(size), mode="bicubic", align_corners=False)
        out = out.clamp(float(image.min()), float(image.max()))
    elif mode == "nearest":
        out = F.interpolate(batch, size=tuple(size), mode="nearest-exact")
    else:
        out = F.interpolate(batch, size=tuple(size), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    return out[0]


class ResizeROId(MapTransform):
    """Resize the ROI to ``spatial_size``: bicubic when enlarging, area averaging when shrinking (the
    paper's rule, chosen per ROI from its pixel count), nearest for ``label_keys``."""

    def __init__(
        self,
        keys: KeysCollection,
        spatial_size: Sequence[int] = (256, 256),
        label_keys: KeysCollection = (),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.spatial_size = tuple(int(s) for s in spatial_size)
        self.label_keys = {label_keys} if isinstance(label_keys, str) else set(label_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key])
            if key in self.label_keys:
                mode = "nearest"
            else:
                enlarging = np.prod(self.spatial_size) > image.shape[-2] * image.shape[-1]
                mode = "bicubic" if enlarging else "area"
            d[key] = _resize(image, self.spatial_size, mode)
        return d


# (clip limit, tiles per side) of the paper's two CLAHE variants; the paper gives no values (docs/deviations.md).
CLAHE_VARIANTS: tuple[tuple[float, int], ...] = ((0.01, 8), (0.03, 4))


def clahe(image: np.ndarray, clip: float, tiles: int) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of a 2-D image in [0, 1] on ``tiles`` x ``tiles`` tiles."""
    kernel = [max(size // tiles, 1) for size in image.shape[-2:]]
    return exposure.equalize_adapthist(np.clip(image, 0, 1), kernel_size=kernel, clip_limit=clip)


class RandCLAHEd(MapTransform, RandomizableTransform):
    """The paper's "two different CLAHE transforms" as random augmentation: with probability
    ``prob`` one of ``variants`` (clip limit, tiles per side) is applied to an image in [0, 1].

    The paper gives no parameters; ours are OpenCV-like defaults (8 x 8 tiles) and a stronger
    variant (4 x 4 tiles, 3x the clip limit). See docs/deviations.md.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.3,
        variants: Sequence[Sequence[float]] = CLAHE_VARIANTS,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.variants = [(float(clip), int(tiles)) for clip, tiles in variants]
        self._variant = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._variant = int(self.R.randint(len(self.variants)))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        clip, tiles = self.variants[self._variant]
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key]).float()
            d[key] = torch.as_tensor(np.stack([clahe(c.numpy(), clip, tiles) for c in image]), dtype=torch.float32)
        return d


class RestoreROId(MapTransform):
    """Resize a (C, 256, 256) prediction back to the size of its crop (bilinear, for probabilities)."""

    def __init__(self, keys: KeysCollection, roi_box_key: str = "roi_box", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.roi_box_key = roi_box_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        x0, y0, x1, y1 = (int(v) for v in np.asarray(d[self.roi_box_key]).ravel())
        for key in self.key_iterator(d):
            d[key] = _resize(torch.as_tensor(d[key]).float(), (y1 - y0, x1 - x0), "bilinear")
        return d


class PasteROId(MapTransform):
    """Paste a (1, h, w) binary ROI mask into a full-size (1, H, W) uint8 mask at ``roi_box``."""

    def __init__(
        self,
        keys: KeysCollection,
        roi_box_key: str = "roi_box",
        image_size_key: str = "image_size",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.roi_box_key = roi_box_key
        self.image_size_key = image_size_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        roi_box = tuple(int(v) for v in np.asarray(d[self.roi_box_key]).ravel())
        image_size = [int(v) for v in np.asarray(d[self.image_size_key]).ravel()]
        for key in self.key_iterator(d):
            roi_mask = np.asarray(torch.as_tensor(d[key]).detach().cpu())[0] > 0.5
            d[key] = torch.as_tensor(paste(roi_mask.astype(np.uint8), roi_box, image_size))[None]
        return d


class ExtractROIsd(MapTransform):
    """Run the per-ROI ``transform`` on every box of a full image and stack the results.

    ``{"image": (1, H, W), "boxes": [[x0, y0, x1, y1], ...]}`` becomes an image of shape
    (N, C, h, w), ``roi_box`` of shape (N, 4), so that all ROIs of an image go through the network
    as one batch. Without boxes the whole image is one ROI.
    """

    def __init__(self, keys: KeysCollection, transform: Any, boxes_key: str = "boxes", box_key: str = "box") -> None:
        super().__init__(keys)
        self.transform = transform
        self.boxes_key = boxes_key
        self.box_key = box_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        first = next(iter(self.key_iterator(d)))
        height, width = d[first].shape[-2:]
        boxes = d.get(self.boxes_key)
        boxes = [[0, 0, width, height]] if boxes is None or len(boxes) == 0 else boxes
        rois = [self.transform({**d, self.box_key: box}) for box in boxes]
        for key in self.key_iterator(d):
            d[key] = torch.stack([torch.as_tensor(roi[key]) for roi in rois])
        d["roi_box"] = torch.as_tensor([roi["roi_box"] for roi in rois])
        return d


class LoadWorkingImaged(MapTransform):
    """Read a whole mammogram and its lesion boxes for the mass detector: ``image`` becomes the
    (1, size, size) working image of :func:`connected_unets.detection.working_image` (one mm scale
    for both axes, longer side at ``size``), ``boxes`` (ours, input pixels; absent or empty for an
    image without a mass) become MONAI's (row0, col0, row1, col1) in working pixels, shape (N, 4),
    and ``labels`` N zeros (the one class, mass). The box conversion is
    :class:`connected_unets.detection.WorkingGeometry`'s, the one place that knows both conventions."""

    def __init__(self, keys: KeysCollection = "image", size: int = 512, boxes_key: str = "boxes", labels_key: str = "labels") -> None:
        super().__init__(keys)
        self.size = int(size)
        self.boxes_key = boxes_key
        self.labels_key = labels_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from .detection import WorkingGeometry, working_image

        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
                d[f"{key}_path"] = str(value)
                loaded = load_image(value)
                array, spacing = loaded.array, (loaded.spacing if loaded.spacing_known else (1.0, 1.0))
            else:
                array, spacing = np.asarray(value), tuple(d.get("spacing") or (1.0, 1.0))
            geometry = WorkingGeometry.of(array.shape, self.size, spacing)
            d[key] = working_image(array, geometry)
            boxes = d.get(self.boxes_key)
            boxes = [] if boxes is None else np.asarray(boxes, dtype=np.float32)
            d[self.boxes_key] = torch.as_tensor(geometry.to_working(boxes), dtype=torch.float32).reshape(-1, 4)
            d[self.labels_key] = torch.zeros(len(d[self.boxes_key]), dtype=torch.long)
            d["image_size"] = list(array.shape)
        return d


# --------------------------------------------------------------------------- the CycleGAN's input


def gan_range(image: LoadedImage) -> np.ndarray:
    """The picture's values mapped to [-1, 1], the CycleGAN's range (its generator ends in tanh).

    The file's integer range when it has one (0..255 for 8-bit, 0..65535 for 16-bit files), so
    brightness is kept as it is stored; else (DICOM after its LUTs, NIfTI) the image's own range.
    """
    low, high = image.value_range or (float(image.array.min()), float(image.array.max()))
    return (np.clip((image.array - low) / max(high - low, 1e-6), 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def gan_view_shape(shape: Sequence[int], min_size: int) -> tuple[int, int]:
    """(H, W) at which the CycleGAN sees an image of ``shape``: its own pixels, or enlarged so that
    its shorter side is ``min_size`` (an ROI smaller than the training crop). Training and
    generation both use it, so the networks meet every ROI at the scale they learnt it."""
    height, width = int(shape[-2]), int(shape[-1])
    scale = max(1.0, min_size / max(min(height, width), 1))
    return max(min_size, round(height * scale)), max(min_size, round(width * scale))


class LoadGANImaged(MapTransform):
    """Read an image file as (1, H, W) float32 in [-1, 1] (:func:`gan_range`); ``<key>_path`` keeps the file."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[f"{key}_path"] = str(d[key])
            d[key] = torch.as_tensor(gan_range(load_image(d[key])))[None]
        return d


class MinSizeResized(MapTransform):
    """Enlarge an image whose shorter side is under ``min_size`` to :func:`gan_view_shape`
    (:func:`resize_gan`); larger images pass unchanged, at their own pixel size."""

    def __init__(self, keys: KeysCollection, min_size: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.min_size = int(min_size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key])
            shape = gan_view_shape(image.shape, self.min_size)
            if shape != tuple(image.shape[-2:]):
                d[key] = resize_gan(image, shape)
        return d


def resize_gan(image: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A (C, H, W) image resized to ``shape``: bicubic (clipped to [-1, 1]) when enlarging, area
    averaging when shrinking, the rule of the segmentation pipeline's resize."""
    batch = torch.as_tensor(image)[None].float()
    if int(np.prod(shape)) >= batch.shape[-2] * batch.shape[-1]:
        out = torch.nn.functional.interpolate(batch, size=tuple(shape), mode="bicubic", align_corners=False).clamp(-1.0, 1.0)
    else:
        out = torch.nn.functional.interpolate(batch, size=tuple(shape), mode="area")
    return out[0]


def from_gan_range(values: np.ndarray, peak: int = 255) -> np.ndarray:
    """[-1, 1] back to stored integers 0..``peak`` (255: uint8, 65535: uint16), rounded."""
    dtype = np.uint8 if peak <= 255 else np.uint16
    return np.round((np.clip(values, -1.0, 1.0) + 1.0) / 2.0 * peak).astype(dtype)
