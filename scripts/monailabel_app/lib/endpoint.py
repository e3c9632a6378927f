"""This app's ``POST /infer/{model}``: MONAI Label's endpoint with readable 4xx answers and our DICOM SEG.

MONAI Label 0.8.5's own endpoint parses ``params`` with a bare ``json.loads`` (malformed JSON is a
500 with no message), runs the model on the server's event loop (no other request, not even
``/info/``, is answered meanwhile), and makes ``output=dicom_seg`` itself from a NIfTI conversion
of a DICOMweb series, with tools it downloads. This route, put in front of it when the app starts,
takes the same arguments and answers the same way (``image``, ``json``, ``all`` through MONAI
Label's own ``send_response``), but:

- refuses a bad request with 4xx and ``{"detail": "<one line>"}`` (:class:`lib.params.RequestError`);
- runs in a worker thread, so the server stays responsive while a mammogram is segmented;
- answers ``output=dicom_seg`` with the per-ROI DICOM SEG of ``connected_unets.writers``, for any
  DICOM study (a ``.dcm`` of a folder, a DICOMweb series or an uploaded DICOM).
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import tempfile
import uuid
from collections.abc import Callable
from typing import Any, Optional

from fastapi import APIRouter, BackgroundTasks, Depends, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse
from monailabel.config import RBAC_USER, settings
from monailabel.endpoints.infer import ResultType, send_response
from monailabel.endpoints.user.auth import RBAC, User
from monailabel.utils.others.generic import remove_file

from .infer import DICOM_SEG_KEY, IMAGE_NAME_KEY
from .params import RequestError, parse_params

logger = logging.getLogger(__name__)

UPLOADED_KEY = "uploaded_file"  # set on the request by this endpoint: "image" is a file the client sent


def infer_router(app_instance: Callable[[], Any]) -> APIRouter:
    """The router holding this app's ``POST /infer/{model}``; ``app_instance()`` gives the MONAILabelApp."""
    router = APIRouter(prefix=settings.MONAI_LABEL_API_STR, tags=["Infer"])

    @router.post("/infer/{model}", summary=f"{RBAC_USER}Segment masses inside params boxes (Connected-UNets)")
    def api_run_inference(  # a plain def: FastAPI runs it in a worker thread
        background_tasks: BackgroundTasks,
        model: str,
        image: str = "",
        session_id: str = "",
        params: str = Form("{}"),
        file: UploadFile = File(None),
        label: UploadFile = File(None),
        output: Optional[ResultType] = None,
        user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER)),
    ) -> Any:
        instance = app_instance()
        temporary: list[str] = []
        try:
            request: dict[str, Any] = dict(parse_params(params))
            request.update({"model": model, "image": image})
            if file is not None:
                suffix = "".join(pathlib.Path(file.filename or "").suffixes)[-16:]
                upload = os.path.join(tempfile.gettempdir(), f"connected-unets-{uuid.uuid4().hex[:12]}-upload{suffix}")
                with open(upload, "wb") as handle:
                    shutil.copyfileobj(file.file, handle)
                temporary.append(upload)
                request.update({"image": upload, UPLOADED_KEY: True, IMAGE_NAME_KEY: file.filename or "the uploaded file"})
            elif session_id:
                session = instance.sessions().get_session(session_id) if instance.sessions() else None
                if session is None:
                    raise RequestError(404, f"unknown session {session_id!r}")
                request.update({"image": session.image, UPLOADED_KEY: True, IMAGE_NAME_KEY: f"session {session_id}"})
            elif not image:
                raise RequestError(422, "no image: give ?image=<image id> (GET /datastore/?output=all lists them) or upload a file")
            if output == ResultType.dicom_seg:
                request[DICOM_SEG_KEY] = True
            result = instance.infer(request)
        except BaseException as err:
            for path in temporary:  # an error response runs no background task
                remove_file(path)
            if isinstance(err, RequestError):
                logger.info("refused /infer/%s?image=%s: %s %s", model, image, err.status, err.message)
                raise HTTPException(status_code=err.status, detail=err.message) from None
            raise
        for path in temporary:
            background_tasks.add_task(remove_file, path)
        if output == ResultType.dicom_seg:
            background_tasks.add_task(remove_file, result.get("file"))
            background_tasks.add_task(remove_file, result["dicom_seg"])
            return FileResponse(result["dicom_seg"], media_type="application/dicom", filename=f"{model}_seg.dcm")
        return send_response(instance.datastore(), result, output, background_tasks)

    return router


def install_infer_route(server: Any, app_instance: Callable[[], Any]) -> None:
    """Put this app's infer route in front of MONAI Label's in the running FastAPI ``server``
    (routes are matched in order, and looked up per request, so this works after start-up)."""
    routes = infer_router(app_instance).routes
    server.router.routes[0:0] = routes
    server.openapi_schema = None  # /openapi.json shows this route's description
    logger.info("infer route of the Connected-UNets app in place: %s", ", ".join(r.path for r in routes))
