"""MONAI Label app: the Connected-UNets bundle as a 2-D auto-segmentation model for mammograms.

Start it with ``scripts/monailabel_serve.sh --studies DIR_OR_URL`` (docs/monailabel.md), or with
``monailabel start_server --app scripts/monailabel_app --studies DIR_OR_URL`` from the MONAI Label
virtualenv (``scripts/monailabel_env.sh``). Options (``--conf KEY VALUE``):

- ``networks``: the networks to serve, comma-separated, or ``all`` for every one with weights in
  the bundle (default: the bundle's default network, Connected-ResUNets). Each is one model, named
  as the bundle's catalogue names it (``connected_resunets``, ``unet``, ...).
- ``bundle``: the bundle folder (default: the one ``connected_unets.bundle`` finds).
- ``device``: ``auto`` (default), ``cpu`` or ``cuda``.
- ``modality``: which DICOMweb series are studies (default ``MG``; empty for all).

An infer request gives ``params`` ``{"boxes": [[x0, y0, x1, y1], ...]}`` to segment the masses
inside ROI boxes; without boxes the bundle's mass detector (``models/detector.pt``) finds them
first. The masks are those of ``connected_unets.inference.Segmenter``, the one every front door of
the project uses.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from monailabel.datastore.dicom import DICOMWebDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.utils.others.generic import remove_file

from connected_unets import __version__
from connected_unets.bundle import DEFAULT_NETWORK, bundle_dir, display_name, network_names, shipped_networks
from connected_unets.inference import Segmenter
from connected_unets.writers import Algorithm

from lib.datastore import MammogramDICOMWebDatastore, folder_datastore, image_exists
from lib.endpoint import UPLOADED_KEY, install_infer_route
from lib.infer import DICOM_SEG_KEY, IMAGE_NAME_KEY, MassSegmentation
from lib.params import RequestError, flag

logger = logging.getLogger(__name__)


class ConnectedUNetsApp(MONAILabelApp):
    """Breast-mass segmentation inside ROI boxes of 2-D mammograms, from a folder or a DICOMweb archive."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        conf = dict(conf or {})
        self.bundle = bundle_dir(conf.get("bundle") or None)
        self.networks = self._networks(conf.get("networks", DEFAULT_NETWORK))
        self.device = conf.get("device", "auto")
        self.modality = conf.get("modality", "MG")
        self._infer_lock = threading.Lock()
        logger.info("Connected-UNets %s: bundle %s, networks %s, device %s", __version__, self.bundle, ", ".join(self.networks), self.device)
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="Connected-UNets",
            description="Breast-mass segmentation inside ROI boxes of 2-D mammograms (Connected-UNets family, research use only)",
            version=__version__,
        )

    def _networks(self, value: str) -> list[str]:
        shipped = list(shipped_networks(self.bundle))
        names = shipped if value.strip() == "all" else [n.strip() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in network_names()]
        if unknown:
            raise ValueError(f"--conf networks: unknown network(s) {', '.join(unknown)}; choose from {', '.join(network_names())} or all")
        missing = [n for n in names if n not in shipped]
        if missing:
            raise ValueError(f"--conf networks: no weights in {self.bundle / 'models'} for {', '.join(missing)}; with weights: {', '.join(shipped) or 'none'}")
        return names or [DEFAULT_NETWORK]

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            self.studies = self.studies.rstrip("/").strip()
            algorithm = Algorithm(display_name(self.networks[0]), __version__)
            return MammogramDICOMWebDatastore(self.studies, self.modality, algorithm, cache_path=self.conf.get("cache") or None)
        return folder_datastore(self.studies)

    def init_infers(self) -> dict[str, MassSegmentation]:
        return {name: MassSegmentation(Segmenter.from_bundle(self.bundle, model=name, device=self.device), name) for name in self.networks}

    def init_trainers(self) -> dict[str, Any]:
        return {}  # training stays with the bundle's train.yaml (docs/monailabel.md)

    def on_init_complete(self) -> None:
        server = sys.modules.get("monailabel.app")  # the running FastAPI server, when there is one
        if server is not None:
            from monailabel.interfaces.utils.app import app_instance

            install_infer_route(server.app, app_instance)
        super().on_init_complete()

    def infer(self, request: dict[str, Any], datastore: Datastore | None = None) -> dict[str, Any]:
        """Segment ``request["image"]`` (a datastore image id, or a file this server received) inside
        ``request["boxes"]``; RequestError (4xx) for a request that cannot be served."""
        model = request.get("model")
        task = self._infers.get(model)
        if task is None:
            raise RequestError(404, f"no model {model!r} here; models: {', '.join(self._infers)}")
        datastore = datastore or self.datastore()
        request = dict(request)
        image_id = request.get("image")
        if not isinstance(image_id, str) or not image_id:
            raise RequestError(422, "no image: give ?image=<image id> or upload a file")
        uploaded = bool(request.pop(UPLOADED_KEY, False))
        save_label = flag(request.get("save_label"), "save_label") and not uploaded
        tag = str(request.get("label_tag") or DefaultLabelTag.ORIGINAL.value)
        to_archive = save_label and tag == DefaultLabelTag.FINAL.value and isinstance(datastore, DICOMWebDatastore)
        wants_seg = flag(request.get(DICOM_SEG_KEY), DICOM_SEG_KEY)
        request["description"] = task.description
        with self._infer_lock:  # one at a time: a DICOMweb series is downloaded once, the CPU is shared anyway
            if not uploaded:
                if not image_exists(datastore, image_id):
                    raise RequestError(404, f"unknown image id {image_id!r} (GET /datastore/?output=all lists the images)")
                request["image"] = datastore.get_image_uri(image_id)
                request[IMAGE_NAME_KEY] = image_id
            request[DICOM_SEG_KEY] = wants_seg or to_archive
            label_file, result_json = task(request)
            seg_file = result_json.pop(DICOM_SEG_KEY, None)
            label_id: str = label_file
            if save_label:
                # a final label for the archive is the per-ROI DICOM SEG; anything else the label image
                saved = seg_file if to_archive else label_file
                label_id = datastore.save_label(image_id, saved, tag, {"model": model, "params": result_json})
                result_json["saved_label"] = {"tag": tag, "id": label_id}
        result = {"label": label_id, "tag": tag, "file": label_file, "params": result_json}
        if wants_seg:
            result["dicom_seg"] = seg_file
        elif seg_file:
            remove_file(seg_file)
        return result
