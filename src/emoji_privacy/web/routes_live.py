"""The webcam: JPEG frames in over a WebSocket, faces and the anonymized JPEG out, one session per tab."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from .engine import fit_result
from .images import decode_image, encode_image
from .schemas import face_out
from .settings import WebRequestError, WebSettings, too_large

router = APIRouter()


@router.websocket("/ws/live")
async def live(ws: WebSocket) -> None:
    """Webcam frames in (binary JPEG/PNG/WebP), for each one a JSON text message (faces, or
    `error`) followed, on success, by the anonymized JPEG as a binary message."""
    state = ws.app.state
    settings: WebSettings = state.settings
    await ws.accept()
    if state.live_sessions >= settings.max_live_sessions:
        await ws.send_text(json.dumps({"error": f"{state.live_sessions} webcam sessions are running, the limit of "
                                                "this server: try again later"}))
        await ws.close(code=1013)
        return
    try:
        session = state.service.session()
    except WebRequestError as e:
        await ws.send_text(json.dumps({"error": e.message}))
        await ws.close(code=1011)
        return
    state.live_sessions += 1
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
                out, faces, ms = await run_in_threadpool(state.service.process, frame, session)
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
        state.live_sessions -= 1
