"""Subtitle I/O: sidecar SRT / WebVTT files, text subtitle streams inside a container, and the WebVTT writer.

Everything becomes a list of Cue(start, end, text) in seconds of the video; the transcript writer turns a
Transcript back into WebVTT (transcript.vtt beside analysis.json).
"""
from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import av

from codec_assist.errors import InputError
from codec_assist.media.decode import open_input
from codec_assist.schemas import Transcript

TEXT_SUBTITLE_CODECS = ("mov_text", "subrip", "srt", "webvtt", "ass", "ssa", "text")
MAX_BYTES = 20 * 1024 * 1024  # a subtitle file is text; anything this large is not one


class SubtitleError(InputError):
    """A subtitle file is missing, not text, or not valid SRT / WebVTT."""


@dataclass
class Cue:
    start: float  # seconds
    end: float
    text: str


def _clean(text: str) -> str:
    """One line of plain text: no ASS override blocks ({\\i1}), no HTML-like tags, no hard breaks."""
    text = re.sub(r"\{\\[^}]*\}", "", text).replace("\\N", " ").replace("\\n", " ")
    text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)
    return " ".join(text.split())


def _decode_text(raw: bytes, path: Path) -> str:
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SubtitleError(f"{path}: not a subtitle file (binary data)")
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            break
    else:
        enc = "utf-8"
    try:
        return raw.decode(enc)
    except UnicodeDecodeError as e:
        raise SubtitleError(f"{path}: not UTF-8 text (byte {e.start}); convert the subtitles to UTF-8") from None


def read_subtitle_file(path: str | Path, duration: float | None = None) -> list[Cue]:
    """Parse a sidecar .srt or .vtt file (the format is sniffed, not taken from the name).

    Cues are clipped to [0, duration] when the video's duration is given; cues wholly beyond it are dropped.
    Any problem is one SubtitleError line.
    """
    import webvtt
    from webvtt.errors import MalformedCaptionError, MalformedFileError

    p = Path(path)
    if not p.exists():
        raise SubtitleError(f"{p}: no such subtitle file")
    if p.is_dir():
        raise SubtitleError(f"{p}: is a directory, not a subtitle file")
    if p.stat().st_size > MAX_BYTES:
        raise SubtitleError(f"{p}: too large for a subtitle file ({p.stat().st_size} bytes)")
    text = _decode_text(p.read_bytes(), p)
    if not text.strip():
        raise SubtitleError(f"{p}: empty subtitle file")
    fmt = "vtt" if text.lstrip("\ufeff").startswith("WEBVTT") else "srt"
    try:
        doc = webvtt.from_buffer(io.StringIO(text), format=fmt, **({"strict": True} if fmt == "vtt" else {}))
    except (MalformedFileError, MalformedCaptionError, ValueError, IndexError) as e:
        kind = "WebVTT" if fmt == "vtt" else "SRT"
        reason = " ".join(str(e).split()) or type(e).__name__
        raise SubtitleError(f"{p}: not valid {kind} ({reason[:120]})") from None
    cues = []
    for c in doc.captions:
        start, end = c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000
        if end < start:
            raise SubtitleError(f"{p}: cue at {c.start} ends before it starts ({c.end})")
        cues.append(Cue(start, end, _clean(c.text)))
    if not cues:
        raise SubtitleError(f"{p}: no subtitle cues found")
    kept = clip_cues(cues, duration)
    if not kept:  # every cue lies past the end (another video's subtitles?) or is empty: say so, go on without
        logging.getLogger("codec_assist").warning("%s: no subtitle cue falls within the video (%d cues, all past "
                                                  "its end or empty); subtitles not used", p, len(cues))
    return kept


def clip_cues(cues: list[Cue], duration: float | None) -> list[Cue]:
    """Drop empty cues and cues past the end; clip the rest to [0, duration]."""
    out = []
    for c in cues:
        if not c.text:
            continue
        if duration is not None:
            if c.start >= duration:
                continue
            c = Cue(max(0.0, c.start), min(c.end, duration), c.text)
        out.append(c)
    return out


def text_subtitle_streams(path: str | Path) -> list[int]:
    """Indices (among the container's subtitle streams) of the text ones; bitmap subtitles are not read."""
    with open_input(path) as c:
        return [k for k, s in enumerate(c.streams.subtitles)
                if s.codec_context is not None and s.codec_context.name in TEXT_SUBTITLE_CODECS]


def read_container_subtitles(path: str | Path, stream: int = 0, duration: float | None = None) -> list[Cue]:
    """Decode the `stream`-th subtitle stream of a media file (mov_text, subrip, webvtt, ass) into cues."""
    p = Path(path)
    cues = []
    with open_input(p) as c:
        s = c.streams.subtitles[stream]
        try:
            for pkt in c.demux(s):
                if pkt.pts is None or not pkt.size or pkt.time_base is None:
                    continue
                start = float(pkt.pts * pkt.time_base)
                end = start + float((pkt.duration or 0) * pkt.time_base)
                for sub in pkt.decode():
                    # PyAV yields AssSubtitle objects (or, in other versions, sets of them)
                    for rect in ([sub] if hasattr(sub, "dialogue") else list(sub)):
                        text = _clean(bytes(rect.dialogue).decode("utf-8", "replace"))
                        if text:
                            cues.append(Cue(start, max(end, start), text))
        except av.error.FFmpegError as e:
            raise SubtitleError(f"{p}: unreadable subtitle stream {stream} ({e})") from None
    return clip_cues(cues, duration)


def vtt_time(t: float) -> str:
    """A WebVTT timestamp, HH:MM:SS.mmm (negative times clamp to 0)."""
    ms = int(round(max(0.0, t) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def to_webvtt(transcript: Transcript) -> str:
    """WebVTT text of a transcript: one cue per segment (with a NOTE naming its source)."""
    lines = ["WEBVTT", "", f"NOTE source: {transcript.source}" + (f", language {transcript.language}"
                                                                  if transcript.language else ""), ""]
    for k, seg in enumerate(transcript.segments, 1):
        # "-->" inside text would end the cue header early; a blank line would end the cue
        text = " ".join(seg.text.replace("-->", "->").split())
        lines += [str(k), f"{vtt_time(seg.start)} --> {vtt_time(max(seg.end, seg.start))}", text, ""]
    return "\n".join(lines)
