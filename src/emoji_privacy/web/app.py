"""The FastAPI application of the demo website, assembled from its routes: still images
(routes_images), video clips (routes_video, with the queue and worker of video_jobs), the webcam
WebSocket (routes_live) and the ROS MJPEG view (routes_ros); the shared state (settings, the
anonymizer service, the URL policy, the video jobs) lives on ``app.state``.
OpenAPI documentation is served at /docs.

Every image that leaves goes through AnonymizerService.process(); errors become an HTTP status
with a one-line `detail` the page shows, and never an original image. Images are anonymized at
their full resolution and only then scaled down to ``max_side`` for the answer (fit_result).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..config import PipelineConfig
from . import routes_images, routes_live, routes_ros, routes_video
from .engine import AnonymizerService
from .fetch import UrlPolicy
from .routes_images import STATIC
from .settings import WebRequestError, WebSettings
from .video_jobs import ClipAnonymizers, VideoJobs


def create_app(settings: WebSettings | None = None, config: PipelineConfig | None = None) -> FastAPI:
    """The website; models load at start-up (a failure is reported by every image request)."""
    settings = settings or WebSettings()
    settings.validate()
    service = AnonymizerService(config or PipelineConfig(), settings.max_pending)
    policy = UrlPolicy(settings.url_timeout_s, settings.max_upload_bytes, settings.url_max_redirects,
                       settings.allow_private_urls, settings.allowed_networks())
    video_jobs = VideoJobs(settings, ClipAnonymizers(service.config))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.load)
        video_jobs.start()
        if settings.ros == "auto":
            from .ros_bridge import RosLiveView  # rospy itself is imported only inside its thread

            _app.state.ros_view = RosLiveView(settings.ros_image_topic, settings.ros_faces_topic,
                                              settings.ros_node_name)
            _app.state.ros_view.start()
        try:
            yield
        finally:
            await run_in_threadpool(video_jobs.stop)  # every job folder is deleted
            if _app.state.ros_view is not None:
                _app.state.ros_view.stop()

    app = FastAPI(title="emoji_privacy web demo", version=__version__, lifespan=lifespan, description=(
        "Every face is covered by an emoji of its emotion. Only anonymized images leave the server; originals "
        "are processed in memory and never stored or logged. Faces are found and covered in the full-resolution "
        "image; only the anonymized image is then scaled down to `max_side` (see /api/info) for the answer, and "
        "face boxes are in its pixels. Errors answer `{\"detail\": \"...\"}`."))
    app.state.settings, app.state.service, app.state.url_policy = settings, service, policy
    app.state.live_sessions, app.state.ros_view, app.state.video_jobs = 0, None, video_jobs
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(WebRequestError)
    async def refused(_request: Request, exc: WebRequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    for routes in (routes_images, routes_video, routes_live, routes_ros):
        app.include_router(routes.router)
    return app
