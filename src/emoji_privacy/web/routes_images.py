"""Still images: the page, server info, demo images, uploads and URLs; each answer is anonymized first."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import EMOTIONS, __version__
from .demo_images import DEMO_IMAGES, demo_image
from .engine import AnonymizerService, fit_result
from .fetch import UrlPolicy, fetch_image_bytes
from .images import FORMATS, decode_image, encode_image
from .schemas import (
    ERRORS,
    FORMAT_QUERY,
    IMAGE_BODY,
    AnonymizeResult,
    DemoInfo,
    ErrorOut,
    ResultFormat,
    UrlRequest,
    face_out,
)
from .settings import WebRequestError, WebSettings, too_large

STATIC = Path(__file__).resolve().parent / "static"
router = APIRouter()


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The raw request body, refused past ``limit`` bytes or when it trickles in slower than ``timeout_s``."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/"):
        raise WebRequestError(415, "send the image file itself as the request body, not a form "
                                   "(curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' ...)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large("the upload", int(declared), limit)

    async def collect() -> bytes:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large("the upload", None, limit)
        return bytes(body)

    try:
        return await asyncio.wait_for(collect(), timeout_s)
    except TimeoutError as e:
        raise WebRequestError(408, f"the upload did not arrive within {timeout_s:g} s (connection too slow?)") from e


async def anonymize(request: Request, frame: np.ndarray, source: str, fmt: ResultFormat) -> Response:
    """The anonymized ``frame``: found and covered at full resolution (small faces count), then scaled."""
    settings: WebSettings = request.app.state.settings
    service: AnonymizerService = request.app.state.service
    out, faces, ms = await run_in_threadpool(service.process, frame)
    out, faces = await run_in_threadpool(fit_result, out, faces, settings.max_side)
    if fmt != "json":
        data = await run_in_threadpool(encode_image, out, fmt, settings.jpeg_quality)
        return Response(data, media_type=f"image/{fmt}", headers={"X-Face-Count": str(len(faces))})
    jpeg = await run_in_threadpool(encode_image, out, "jpeg", settings.jpeg_quality)
    result = AnonymizeResult(source=source, width=out.shape[1], height=out.shape[0],
                             faces=[face_out(f) for f in faces], processing_ms=round(ms, 1),
                             image_data_url="data:image/jpeg;base64," + base64.b64encode(jpeg).decode())
    return JSONResponse(result.model_dump())


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/api/info", summary="Limits and features of this server")
async def info(request: Request) -> dict[str, object]:
    settings: WebSettings = request.app.state.settings
    service: AnonymizerService = request.app.state.service
    return {"version": __version__, "max_upload_bytes": settings.max_upload_bytes,
            "max_pixels": settings.max_pixels, "max_side": settings.max_side, "formats": list(FORMATS),
            "emotions": list(EMOTIONS), "ros": settings.ros, "pipeline_ready": service.base is not None,
            "pipeline_error": service.startup_error}


@router.get("/api/demo", summary="The demo images", response_model=list[DemoInfo])
async def demo_list() -> list[DemoInfo]:
    return [DemoInfo(name=d.name, title=d.title, credit=d.credit) for d in DEMO_IMAGES.values()]


@router.get("/api/demo/{name}", summary="Anonymize a demo image", response_model=AnonymizeResult,
            responses={404: {"model": ErrorOut}, **ERRORS})
async def demo(request: Request, name: str, format: ResultFormat = FORMAT_QUERY) -> Response:
    if name not in DEMO_IMAGES:
        raise WebRequestError(404, f"no demo image '{name}' (there are: {', '.join(DEMO_IMAGES)})")
    return await anonymize(request, await run_in_threadpool(demo_image, name), f"demo:{name}", format)


@router.post("/api/anonymize", summary="Anonymize an uploaded image (the body is the JPEG/PNG/WebP file)",
             response_model=AnonymizeResult, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def upload(request: Request, format: ResultFormat = FORMAT_QUERY) -> Response:
    settings: WebSettings = request.app.state.settings
    data = await read_body(request, settings.max_upload_bytes, settings.body_timeout_s)
    frame = await run_in_threadpool(decode_image, data, settings.max_pixels)
    del data  # the original's bytes are not kept a moment longer than needed
    return await anonymize(request, frame, "upload", format)


@router.post("/api/anonymize-url", summary="Fetch an image URL server-side and anonymize it",
             response_model=AnonymizeResult, responses=ERRORS)
async def from_url(request: Request, req: UrlRequest, format: ResultFormat = FORMAT_QUERY) -> Response:
    settings: WebSettings = request.app.state.settings
    policy: UrlPolicy = request.app.state.url_policy
    data = await run_in_threadpool(fetch_image_bytes, req.url, policy)
    frame = await run_in_threadpool(decode_image, data, settings.max_pixels)
    del data
    return await anonymize(request, frame, "url", format)
