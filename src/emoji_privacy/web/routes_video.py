"""Video clips: upload (the body is the file), status with queue position or progress, the anonymized MP4
(Range requests, so a <video> element can seek) and its faces, and discarding a job early.

The jobs themselves (queue, worker, private folders, retention) are video_jobs.VideoJobs on
``app.state.video_jobs``. Only the anonymized MP4 and the faces JSON lines are ever served; the upload is
only read by the worker and deleted as soon as processing ends.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from .engine import AnonymizerService
from .schemas import (
    VIDEO_BODY,
    VIDEO_ERRORS,
    VideoClipOut,
    VideoInfo,
    VideoJobOut,
    VideoSummaryOut,
    VideoTrackOut,
)
from .settings import WebRequestError, WebSettings, too_large
from .video_jobs import FACES, OUTPUT, VideoJob, VideoJobs, probe_clip, top_tracks

router = APIRouter()
CURL_HINT = "curl --data-binary @clip.mp4 -H 'Content-Type: video/mp4' ..."


def _jobs(request: Request) -> VideoJobs:
    return request.app.state.video_jobs


def _stem(name: str) -> str:
    """A safe file name stem for the downloads, from the client's name of the clip."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._")[:60]
    return stem or "clip"


async def receive_to_file(request: Request, path: Path, limit: int, timeout_s: float) -> int:
    """Stream the request body into ``path`` (never held in memory whole), refused past ``limit`` bytes or when
    it arrives slower than ``timeout_s`` in all. Returns the size."""

    async def collect() -> int:
        size = 0
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:  # private to the server
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large("the clip", None, limit)
                f.write(chunk)
        return size

    try:
        return await asyncio.wait_for(collect(), timeout_s)
    except TimeoutError as e:
        raise WebRequestError(408, f"the clip did not arrive within {timeout_s:g} s (connection too slow?)") from e


def job_out(request: Request, job: VideoJob) -> VideoJobOut:
    jobs = _jobs(request)
    processing, waiting = jobs.counts()
    out = VideoJobOut(id=job.id, state=job.state, position=jobs.position(job), processing=processing,
                      waiting=waiting, frames_done=job.frames_done, frames_total=job.frames_total, message=job.message)
    if job.clip is not None:
        c = job.clip
        out.clip = VideoClipOut(width=c.width, height=c.height, seconds=_round(c.seconds), fps=_round(c.fps),
                                frames=c.frames, audio=c.audio, video_codec=c.video_codec)
    if job.summary is not None:
        s = job.summary
        out.summary = VideoSummaryOut(frames=s.frames, fps=round(s.fps, 3), width=s.width, height=s.height,
                                      audio=s.audio, processing_s=round(s.seconds, 2), failed_frames=s.failed,
                                      bytes=job.output_bytes)
        shown, others = top_tracks(job.tracks)
        out.tracks = [VideoTrackOut(**vars(t)) for t in shown]
        out.track_count, out.other_tracks = len(job.tracks), len(others)
        out.other_frames = sum(t.frames for t in others)
    if job.state == "done":
        out.video_url = f"/api/video/{job.id}/video.mp4"
        out.faces_url = f"/api/video/{job.id}/faces.jsonl"
        left = jobs.expires_in(job)
        out.expires_in_s = None if left is None else round(left, 1)
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


class ServedFile(FileResponse):
    """A job's file; its folder is not deleted while it is sent, and for the MP4 the byte range that reached the
    server's socket in full is recorded (the result counts as fetched once every byte has been sent). A client
    that disconnects stops the sending (so its range is not counted)."""

    def __init__(self, jobs: VideoJobs, job: VideoJob, path: Path, track: bool, **kwargs: object) -> None:
        self.jobs, self.job, self.track = jobs, job, track
        try:
            super().__init__(path, **kwargs)  # type: ignore[arg-type]
        except BaseException:
            jobs.closed_output(job, None)
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span: tuple[int, int] | None = None
        sent = 0
        complete = False

        async def counting(message: Message) -> None:
            nonlocal span, sent
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                match = re.fullmatch(rb"bytes (\d+)-(\d+)/\d+", headers.get(b"content-range", b""))
                if message["status"] == 206 and match:
                    span = (int(match[1]), int(match[2]) + 1)
                elif message["status"] == 200:
                    span = (0, self.job.output_bytes)
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            async with anyio.create_task_group() as tg:
                async def respond() -> None:
                    nonlocal complete
                    await FileResponse.__call__(self, scope, receive, counting)
                    complete = True
                    tg.cancel_scope.cancel()

                async def listen() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(respond)
                tg.start_soon(listen)
        finally:
            full = complete and span is not None and sent == span[1] - span[0] and scope.get("method") != "HEAD"
            self.jobs.closed_output(self.job, span if self.track and full else None)


@router.get("/api/video/info", summary="Limits of video clips and the queue's state", response_model=VideoInfo)
async def video_info(request: Request) -> VideoInfo:
    s: WebSettings = request.app.state.settings
    processing, waiting = _jobs(request).counts()
    return VideoInfo(max_video_bytes=s.max_video_bytes, max_video_seconds=s.max_video_seconds,
                     max_video_pixels=s.max_video_pixels, max_video_waiting=s.max_video_waiting,
                     fetched_grace_s=s.video_fetched_grace_s, result_timeout_s=s.video_result_timeout_s,
                     processing=processing, waiting=waiting)


@router.post("/api/video", summary="Upload a video clip to anonymize (the body is the MP4/MOV/MKV/WebM/AVI file)",
             status_code=202, response_model=VideoJobOut, responses=VIDEO_ERRORS, openapi_extra=VIDEO_BODY)
async def upload_video(request: Request, name: str = Query("clip", description="the clip's file name (for the "
                                                                                 "download's name)")) -> JSONResponse:
    s: WebSettings = request.app.state.settings
    service: AnonymizerService = request.app.state.service
    if service.base is None:
        why = service.startup_error or "models are still loading"
        raise WebRequestError(503, f"the anonymizer is not running ({why}); no clip is taken")
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise WebRequestError(415, f"send the video file itself as the request body, not a form ({CURL_HINT})")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > s.max_video_bytes:
        raise too_large("the clip", int(declared), s.max_video_bytes)
    jobs = _jobs(request)
    job = jobs.reserve(_stem(name))
    try:
        assert job.folder is not None
        size = await receive_to_file(request, job.upload, s.max_video_bytes, s.video_body_timeout_s)
        if size == 0:
            raise WebRequestError(400, "the request carries no clip: send an MP4, MOV, MKV, WebM or AVI file")
        clip = await run_in_threadpool(probe_clip, job.upload, s.max_video_seconds, s.max_video_pixels)
        jobs.enqueue(job, clip)
    except BaseException:
        jobs.discard(job)  # the folder and whatever arrived of the upload are deleted now
        raise
    return JSONResponse(job_out(request, job).model_dump(), status_code=202)


@router.get("/api/video/{job_id}", summary="A clip's state: queued (position), processing (frames), done, failed",
            response_model=VideoJobOut, responses=VIDEO_ERRORS)
async def video_status(request: Request, job_id: str) -> VideoJobOut:
    return job_out(request, _jobs(request).get(job_id))


@router.get("/api/video/{job_id}/video.mp4", summary="The anonymized clip (H.264 MP4 with the upload's audio)",
            response_class=FileResponse, responses=VIDEO_ERRORS)
async def video_file(request: Request, job_id: str,
                     download: bool = Query(False, description="as an attachment")) -> Response:
    jobs = _jobs(request)
    job = jobs.get(job_id)
    path = jobs.open_output(job, OUTPUT)
    return ServedFile(jobs, job, path, True, media_type="video/mp4", filename=f"{job.filename}_anonymized.mp4",
                      content_disposition_type="attachment" if download else "inline",
                      headers={"Cache-Control": "no-store"})


@router.get("/api/video/{job_id}/faces.jsonl", summary="The clip's faces: one JSON object per frame",
            response_class=FileResponse, responses=VIDEO_ERRORS)
async def video_faces(request: Request, job_id: str) -> Response:
    jobs = _jobs(request)
    job = jobs.get(job_id)
    path = jobs.open_output(job, FACES)
    return ServedFile(jobs, job, path, False, media_type="application/x-ndjson",
                      filename=f"{job.filename}_faces.jsonl", headers={"Cache-Control": "no-store"})


@router.delete("/api/video/{job_id}", summary="Discard a clip now: its files are deleted", status_code=204,
               responses=VIDEO_ERRORS)
async def video_delete(request: Request, job_id: str) -> Response:
    jobs = _jobs(request)
    jobs.discard(jobs.get(job_id))
    return Response(status_code=204)
