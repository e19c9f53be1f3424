"""Subtitles as a time-aligned text source: a sidecar SRT / WebVTT file, or a text subtitle stream inside the
container (mov_text, subrip, webvtt, ass). Each cue becomes a transcript segment scored like speech
(analyzers.speech.salience) with activity 1: shown text matters whether or not someone is speaking.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from codec_assist.media.decode import ProxyFrame
from codec_assist.schemas import Transcript, TranscriptSegment
from codec_assist.media.subtitles import read_container_subtitles, read_subtitle_file, text_subtitle_streams

from .base import AnalysisContext, Analyzer, AnalyzerOutput, Skip
from .speech import score_segments, transcript_output


class Subtitles(Analyzer):
    name: ClassVar[str] = "subtitles"
    every_frame: ClassVar[bool] = False
    needs_pictures: ClassVar[bool] = False
    produces_map: ClassVar[bool] = False

    def __init__(self, path: str | None = None, stream: int | None = None, keyphrases: str = "keybert"):
        self.path = path  # sidecar file; None: the container's first text subtitle stream (or `stream`)
        self.stream = stream
        self.keyphrase_method = keyphrases

    def start(self, ctx: AnalysisContext) -> None:
        super().start(ctx)
        duration = ctx.video.duration or None
        # parsed here, before the decode, so a bad file fails at once (one line, exit 2)
        if self.path:
            self.cues = read_subtitle_file(self.path, duration)
            self.source = f"subtitles:{Path(self.path).name}"
            return
        streams = text_subtitle_streams(ctx.video.path)
        if self.stream is None and not streams:
            raise Skip("no subtitle file given and the input has no text subtitle stream")
        k = streams[0] if self.stream is None else self.stream
        self.cues = read_container_subtitles(ctx.video.path, k, duration)
        self.source = f"subtitles:stream{k}"

    def process(self, frame: ProxyFrame) -> None:
        pass  # the cues are text; the pictures are not needed

    def finish(self) -> AnalyzerOutput:
        segments = [TranscriptSegment(start=c.start, end=c.end, text=c.text) for c in self.cues]
        activity = [1.0] * len(segments)
        phrases = score_segments(segments, activity, keyphrase_method=self.keyphrase_method)
        transcript = Transcript(source=self.source, segments=segments)
        return transcript_output(transcript, "subtitles", self.ctx, phrases, activity)
