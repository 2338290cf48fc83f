"""The FastAPI application of the demo website: the page, the JSON/image HTTP API, the webcam
WebSocket and the ROS MJPEG view. OpenAPI documentation is served at /docs.

Every image that leaves goes through AnonymizerService.process(); errors become an HTTP status
with a one-line `detail` the page shows, and never an original image. Images are anonymized at
their full resolution and only then scaled down to ``max_side`` for the answer (fit_result).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from .. import EMOTIONS, __version__
from ..config import PipelineConfig
from ..pipeline import FaceResult
from .demo_images import DEMO_IMAGES, demo_image
from .engine import AnonymizerService, fit_result
from .fetch import UrlPolicy, fetch_image_bytes
from .images import FORMATS, decode_image, encode_image
from .settings import WebRequestError, WebSettings, too_large

if TYPE_CHECKING:
    from .ros_bridge import RosLiveView

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
MJPEG_BOUNDARY = "frame"


class FaceOut(BaseModel):
    """One face of the returned image (coordinates in the returned image's pixels)."""

    track_id: int
    box: list[float] = Field(description="x0, y0, x1, y1 of the detected face")
    score: float = Field(description="detection confidence")
    emotion: str = Field(description=f"one of {', '.join(EMOTIONS)}")
    confidence: float = Field(description="probability of the shown emotion")
    probabilities: dict[str, float]
    roll_deg: float = Field(description="head roll, counter-clockwise on screen")


class AnonymizeResult(BaseModel):
    source: str
    width: int = Field(description="of the returned image: the anonymized image scaled down to max_side")
    height: int
    faces: list[FaceOut]
    processing_ms: float
    image_data_url: str = Field(description="the anonymized image as a data: URL (JPEG)")


class DemoInfo(BaseModel):
    name: str
    title: str
    credit: str


class UrlRequest(BaseModel):
    url: str = Field(description="http(s) address of a JPEG, PNG or WebP image", examples=["https://example.org/a.jpg"])


class ErrorOut(BaseModel):
    detail: str


class RosStatus(BaseModel):
    enabled: bool
    streaming: bool = False
    subscribed: bool = False
    master_uri: str = ""
    image_topic: str = ""
    faces_topic: str = ""
    frames: int = 0
    last_frame_age_s: float | None = None
    message: str


class RosFaces(BaseModel):
    stamp: float | None
    faces: list[FaceOut]


ERRORS = {s: {"model": ErrorOut} for s in (400, 403, 408, 413, 415, 422, 500, 502, 503, 504)}
IMAGE_BODY = {"requestBody": {"required": True, "description": "the image file itself (not a form)", "content": {
    t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png", "image/webp")}}}
ResultFormat = Literal["json", "jpeg", "png"]
FORMAT_QUERY = Query("json", description="json: faces and the image as a data URL; jpeg/png: the image alone")


def face_out(f: FaceResult) -> FaceOut:
    return FaceOut(track_id=f.track_id, box=[round(float(v), 1) for v in f.box], score=round(f.score, 4),
                   emotion=f.emotion, confidence=round(f.confidence, 4),
                   probabilities={e: round(float(p), 4) for e, p in zip(EMOTIONS, f.probabilities, strict=False)},
                   roll_deg=round(f.roll_deg, 1))


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


def create_app(settings: WebSettings | None = None, config: PipelineConfig | None = None) -> FastAPI:
    """The website; models load at start-up (a failure is reported by every image request)."""
    settings = settings or WebSettings()
    settings.validate()
    service = AnonymizerService(config or PipelineConfig(), settings.max_pending)
    policy = UrlPolicy(settings.url_timeout_s, settings.max_upload_bytes, settings.url_max_redirects,
                       settings.allow_private_urls, settings.allowed_networks())
    live_sessions = 0
    ros_view: RosLiveView | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        nonlocal ros_view
        await run_in_threadpool(service.load)
        if settings.ros == "auto":
            from .ros_bridge import RosLiveView  # rospy itself is imported only inside its thread

            ros_view = RosLiveView(settings.ros_image_topic, settings.ros_faces_topic, settings.ros_node_name)
            ros_view.start()
        yield
        if ros_view is not None:
            ros_view.stop()

    app = FastAPI(title="emoji_privacy web demo", version=__version__, lifespan=lifespan, description=(
        "Every face is covered by an emoji of its emotion. Only anonymized images leave the server; originals "
        "are processed in memory and never stored or logged. Faces are found and covered in the full-resolution "
        "image; only the anonymized image is then scaled down to `max_side` (see /api/info) for the answer, and "
        "face boxes are in its pixels. Errors answer `{\"detail\": \"...\"}`."))
    app.state.settings, app.state.service = settings, service
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(WebRequestError)
    async def refused(_request: Request, exc: WebRequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    async def anonymize(frame: np.ndarray, source: str, fmt: ResultFormat) -> Response:
        out, faces, ms = await run_in_threadpool(service.process, frame)  # full resolution: small faces count
        out, faces = await run_in_threadpool(fit_result, out, faces, settings.max_side)
        if fmt != "json":
            data = await run_in_threadpool(encode_image, out, fmt, settings.jpeg_quality)
            return Response(data, media_type=f"image/{fmt}", headers={"X-Face-Count": str(len(faces))})
        jpeg = await run_in_threadpool(encode_image, out, "jpeg", settings.jpeg_quality)
        result = AnonymizeResult(source=source, width=out.shape[1], height=out.shape[0],
                                 faces=[face_out(f) for f in faces], processing_ms=round(ms, 1),
                                 image_data_url="data:image/jpeg;base64," + base64.b64encode(jpeg).decode())
        return JSONResponse(result.model_dump())

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/info", summary="Limits and features of this server")
    async def info() -> dict[str, object]:
        return {"version": __version__, "max_upload_bytes": settings.max_upload_bytes,
                "max_pixels": settings.max_pixels, "max_side": settings.max_side, "formats": list(FORMATS),
                "emotions": list(EMOTIONS), "ros": settings.ros, "pipeline_ready": service.base is not None,
                "pipeline_error": service.startup_error}

    @app.get("/api/demo", summary="The demo images", response_model=list[DemoInfo])
    async def demo_list() -> list[DemoInfo]:
        return [DemoInfo(name=d.name, title=d.title, credit=d.credit) for d in DEMO_IMAGES.values()]

    @app.get("/api/demo/{name}", summary="Anonymize a demo image", response_model=AnonymizeResult,
             responses={404: {"model": ErrorOut}, **ERRORS})
    async def demo(name: str, format: ResultFormat = FORMAT_QUERY) -> Response:
        if name not in DEMO_IMAGES:
            raise WebRequestError(404, f"no demo image '{name}' (there are: {', '.join(DEMO_IMAGES)})")
        return await anonymize(await run_in_threadpool(demo_image, name), f"demo:{name}", format)

    @app.post("/api/anonymize", summary="Anonymize an uploaded image (the body is the JPEG/PNG/WebP file)",
              response_model=AnonymizeResult, responses=ERRORS, openapi_extra=IMAGE_BODY)
    async def upload(request: Request, format: ResultFormat = FORMAT_QUERY) -> Response:
        data = await read_body(request, settings.max_upload_bytes, settings.body_timeout_s)
        frame = await run_in_threadpool(decode_image, data, settings.max_pixels)
        del data  # the original's bytes are not kept a moment longer than needed
        return await anonymize(frame, "upload", format)

    @app.post("/api/anonymize-url", summary="Fetch an image URL server-side and anonymize it",
              response_model=AnonymizeResult, responses=ERRORS)
    async def from_url(req: UrlRequest, format: ResultFormat = FORMAT_QUERY) -> Response:
        data = await run_in_threadpool(fetch_image_bytes, req.url, policy)
        frame = await run_in_threadpool(decode_image, data, settings.max_pixels)
        del data
        return await anonymize(frame, "url", format)

    @app.websocket("/ws/live")
    async def live(ws: WebSocket) -> None:
        """Webcam frames in (binary JPEG/PNG/WebP), for each one a JSON text message (faces, or
        `error`) followed, on success, by the anonymized JPEG as a binary message."""
        nonlocal live_sessions
        await ws.accept()
        if live_sessions >= settings.max_live_sessions:
            await ws.send_text(json.dumps({"error": f"{live_sessions} webcam sessions are running, the limit of "
                                                    "this server: try again later"}))
            await ws.close(code=1013)
            return
        try:
            session = service.session()
        except WebRequestError as e:
            await ws.send_text(json.dumps({"error": e.message}))
            await ws.close(code=1011)
            return
        live_sessions += 1
        try:
            while True:
                try:
                    msg = await asyncio.wait_for(ws.receive(), settings.live_idle_timeout_s)
                except TimeoutError:
                    await ws.close(code=1001, reason=f"no frame for {settings.live_idle_timeout_s:g} s")
                    return
                if msg["type"] == "websocket.disconnect":
                    return
                data = msg.get("bytes")
                if data is None:
                    await ws.send_text(json.dumps({"error": "send each frame as a binary message (a JPEG)"}))
                    continue
                try:
                    if len(data) > settings.max_upload_bytes:
                        raise too_large("the webcam frame", len(data), settings.max_upload_bytes)
                    frame = await run_in_threadpool(decode_image, data, settings.max_pixels)
                    out, faces, ms = await run_in_threadpool(service.process, frame, session)
                    del frame
                    out, faces = await run_in_threadpool(fit_result, out, faces, settings.max_side)
                    jpeg = await run_in_threadpool(encode_image, out, "jpeg", settings.jpeg_quality)
                except WebRequestError as e:
                    await ws.send_text(json.dumps({"error": e.message}))
                    continue
                await ws.send_text(json.dumps({"width": out.shape[1], "height": out.shape[0],
                                               "processing_ms": round(ms, 1),
                                               "faces": [face_out(f).model_dump() for f in faces]}))
                await ws.send_bytes(jpeg)
        except WebSocketDisconnect:
            return
        finally:
            live_sessions -= 1

    def require_ros() -> RosLiveView:
        if ros_view is None:
            raise WebRequestError(503, "the ROS view is off on this server (started with --ros off)")
        return ros_view

    @app.get("/api/ros/status", summary="Whether a ROS graph's anonymized image is being received",
             response_model=RosStatus)
    async def ros_status() -> RosStatus:
        if ros_view is None:
            return RosStatus(enabled=False, message="the ROS view is off on this server (started with --ros off)")
        return RosStatus(enabled=True, **ros_view.status())

    @app.get("/api/ros/faces", summary="The newest /anonymized/faces", response_model=RosFaces,
             responses={503: {"model": ErrorOut}})
    async def ros_faces() -> RosFaces:
        stamp, faces = require_ros().faces()
        return RosFaces(stamp=stamp, faces=[face_out(f) for f in faces])

    @app.get("/api/ros/stream.mjpg", summary="MJPEG stream of /anonymized/image (for an <img> tag)",
             responses={200: {"content": {f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}": {}}},
                        503: {"model": ErrorOut}})
    async def ros_stream(max_fps: float = Query(15.0, gt=0, le=60)) -> StreamingResponse:
        view = require_ros()
        if not view.status()["streaming"]:
            raise WebRequestError(503, f"no ROS image to show: {view.status()['message']}")

        async def parts() -> AsyncIterator[bytes]:
            seq = 0
            while True:
                frame = await run_in_threadpool(view.jpeg_after, seq)
                if frame is None:
                    await asyncio.sleep(0.02)
                    continue
                seq, jpeg = frame[0], frame[1]
                yield (f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                       ).encode() + jpeg + b"\r\n"
                await asyncio.sleep(1.0 / max_fps)

        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})

    return app
