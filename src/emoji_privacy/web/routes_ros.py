"""The ROS view: a running graph's /anonymized/image as MJPEG and its newest faces (``--ros auto``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from .schemas import ErrorOut, RosFaces, RosStatus, face_out
from .settings import WebRequestError

if TYPE_CHECKING:
    from .ros_bridge import RosLiveView

MJPEG_BOUNDARY = "frame"
router = APIRouter()


def require_ros(request: Request) -> RosLiveView:
    ros_view = request.app.state.ros_view
    if ros_view is None:
        raise WebRequestError(503, "the ROS view is off on this server (started with --ros off)")
    return ros_view

@router.get("/api/ros/status", summary="Whether a ROS graph's anonymized image is being received",
         response_model=RosStatus)
async def ros_status(request: Request) -> RosStatus:
    ros_view = request.app.state.ros_view
    if ros_view is None:
        return RosStatus(enabled=False, message="the ROS view is off on this server (started with --ros off)")
    return RosStatus(enabled=True, **ros_view.status())

@router.get("/api/ros/faces", summary="The newest /anonymized/faces", response_model=RosFaces,
         responses={503: {"model": ErrorOut}})
async def ros_faces(request: Request) -> RosFaces:
    stamp, faces = require_ros(request).faces()
    return RosFaces(stamp=stamp, faces=[face_out(f) for f in faces])

@router.get("/api/ros/stream.mjpg", summary="MJPEG stream of /anonymized/image (for an <img> tag)",
         responses={200: {"content": {f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}": {}}},
                    503: {"model": ErrorOut}})
async def ros_stream(request: Request, max_fps: float = Query(15.0, gt=0, le=60)) -> StreamingResponse:
    view = require_ros(request)
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
