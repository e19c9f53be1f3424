"""Faithful outputs: an encode changes the bits, never how the picture is meant to look or what else the file holds.

One place for everything an encode carries from its source, used by every path that writes a video from a
source (plain, assisted, plan, allocation, target quality, each ladder rung, chunks and their join, batch):

- colour: range, matrix, primaries and transfer, set on the encoder's context so that libx264/libx265 write
  them into the bitstream VUI and the muxer into the container (mp4 `colr`, Matroska `Colour`); what the source
  leaves unspecified stays unspecified. Pixel conversions keep the range and matrix (no silent full->limited
  squeeze); a source the encoders cannot take as it is (RGB, 4:2:2/4:4:4, more bits than x264's 8) is
  converted and the warning says what changed.
- HDR10: the mastering display and content light level of the source (its first frame's side data, where
  FFmpeg puts both the SEI and the container boxes) become x265 `master-display`/`max-cll` (x264:
  `mastering-display`/`cll`); PQ and HLG transfers are carried like any transfer.
- geometry: the display matrix (rotation, flips) is set before the header is written (it used to be set on the
  first decoded frame, after an audio packet had already written the header: rotated clips with audio played
  sideways), the sample aspect ratio is carried (rescaled so the display aspect stays when a ladder rung
  changes the storage size).
- the container: every audio track (copied where the container takes its codec, else re-encoded to AAC with
  a warning), subtitle tracks (copied, or text subtitles converted to the container's text format with a
  warning; bitmap subtitles an mp4 cannot hold are dropped with a warning), chapters, the file's metadata
  (title, ...), each track's language, title and disposition, the cover picture (MP4; elsewhere a warning),
  closed captions (the frames' A53 side data; x265 is asked to write them, x264 does by default). Data and
  attachment streams are dropped with a warning. Timestamps (VFR, start offset) are the source's: frames keep
  their pts, except that an MPEG-TS/PS running clock is moved to start at 0 (ClockOrigin).
- fields: an interlaced source stays interlaced with x264, in its field order; x265 (whole frames here) warns.
- not carried, with a warning: a 360° projection (spherical mapping), Dolby Vision and HDR10+ dynamic metadata, an
  ICC profile, and a stereoscopic 3D layout where neither the bitstream nor the container keeps it (x264 writes it as
  a frame-packing SEI, the Matroska muxer as the track's StereoMode; x265 into MP4 neither). The decoder hands them
  over on every frame, but PyAV can set neither the output stream's side data (where the muxers read the projection
  from) nor the encoders' dynamic HDR metadata, so the output would silently play as a flat, 2D or HDR10-only picture.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.filter

import codec_assist.media.decode as media

log = logging.getLogger("codec_assist")

# FFmpeg enum values (libavutil/pixfmt.h): 2 = unspecified for matrix/primaries/transfer, 0 for range.
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
UNSPECIFIED = 2
SPC_RGB, SPC_SMPTE170M = 0, 6
# Which audio codecs each container takes without re-encoding (the muxer's own list is wider but partly
# experimental: PCM and Vorbis in mp4 are not read by most players).
AUDIO_COPY = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"},
    "mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"},
    "matroska": None,  # whatever the muxer takes
}
TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}
SUBTITLE_TARGET = {"mp4": "mov_text", "mov": "mov_text", "matroska": "subrip"}
# File and track metadata that describes the old file, not the content: not carried.
SKIP_TAGS = {"encoder", "duration", "major_brand", "minor_version", "compatible_brands", "vendor_id",
             "handler_name", "number_of_frames", "number_of_bytes", "_statistics_tags", "_statistics_writing_app",
             "_statistics_writing_date_utc", "bps", "statistics_tags", "statistics_writing_app",
             "statistics_writing_date_utc", "rotate"}
# Frame side data that tells a player how to show the picture and that no output of this tool carries (see above)
UNCARRIED_SIDE_DATA = {
    "SPHERICAL": "360° projection (spherical mapping)",
    "STEREO3D": "stereoscopic 3D layout",
    "DOVI_METADATA": "Dolby Vision metadata (the output is its base layer alone)",
    "DOVI_RPU_BUFFER": "Dolby Vision metadata (the output is its base layer alone)",
    "DYNAMIC_HDR_PLUS": "HDR10+ dynamic metadata",
    "DYNAMIC_HDR_VIVID": "HDR Vivid dynamic metadata",
    "ICC_PROFILE": "ICC colour profile",
}
DISPOSITIONS = ("default", "forced", "dub", "original", "comment", "lyrics", "karaoke", "hearing_impaired",
                "visual_impaired", "captions", "descriptions")


@dataclass
class Look:
    """How the source's picture is meant to be shown (FFmpeg enum values; 2 / 0 = the source does not say)."""

    pix_fmt: str = "yuv420p"
    color_range: int = RANGE_UNSPECIFIED
    colorspace: int = UNSPECIFIED
    color_primaries: int = UNSPECIFIED
    color_trc: int = UNSPECIFIED
    display_matrix: list[int] | None = None
    rotation: float = 0.0
    sar: Fraction | None = None
    mastering: dict | None = None  # {"r": (x, y), "g": ..., "b": ..., "wp": ..., "min": cd/m2, "max": cd/m2}
    light: tuple[int, int] | None = None  # (MaxCLL, MaxFALL)
    fields: str = ""  # interlaced: "top" or "bottom" (the field shown first); "" progressive
    # frame side data saying how to show the picture that an output may not keep (UNCARRIED_SIDE_DATA's kinds)
    shown_as: list[str] = field(default_factory=list)

    @property
    def interlaced(self) -> bool:
        return bool(self.fields)

    @property
    def is_rgb(self) -> bool:
        try:
            return bool(av.video.format.VideoFormat(self.pix_fmt).is_rgb)
        except (ValueError, TypeError):
            return False

    @property
    def full_range(self) -> bool:
        return self.color_range == RANGE_FULL or self.pix_fmt.startswith("yuvj")


def _enum(value, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


class ClockOrigin:
    """Where the output's timeline starts. A container whose timestamps are a running transport clock (MPEG-TS and
    MPEG-PS: FFmpeg's "discontinuous timestamps") starts wherever the capture began, 10 hours in as easily as 0;
    copied into MP4 or Matroska that clock became a 10-hour empty edit before the picture. Such a source's
    timestamps are moved so that its earliest stream starts at 0, the streams' offsets to each other kept (as the
    ffmpeg CLI does). Other containers keep their timeline, a deliberate start offset included."""

    TS_DISCONT = 0x200  # AVFMT_TS_DISCONT

    def __init__(self, container):
        clock = bool(container.format.flags & self.TS_DISCONT) and bool(container.start_time)
        self.seconds = Fraction(container.start_time, av.time_base) if clock else Fraction(0)

    def ticks(self, time_base) -> int:
        """The origin in `time_base` units (0 when the timeline is kept)."""
        return int(round(self.seconds / time_base)) if self.seconds and time_base else 0

    def shift(self, packet: av.Packet) -> None:
        """Move a copied packet onto the output's timeline."""
        t = self.ticks(packet.time_base)
        if t:
            if packet.pts is not None:
                packet.pts -= t
            if packet.dts is not None:
                packet.dts -= t


class Unflagged:
    """The frames of `stream` without their "interlaced" flag (FFmpeg's setfield=prog), pictures, timing and side
    data untouched."""

    def __init__(self, stream):
        self._graph = av.filter.Graph()
        source, setfield, sink = (self._graph.add_buffer(template=stream), self._graph.add("setfield", "prog"),
                                  self._graph.add("buffersink"))
        source.link_to(setfield)
        setfield.link_to(sink)
        self._graph.configure()

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        self._graph.push(frame)
        return self._graph.pull()


def read_look(path: str | Path) -> Look:
    """The source's look: its stream's colour fields, refined by its first decoded frame (which carries the
    display matrix and HDR side data from both the bitstream and the container)."""
    p = Path(path)
    with media.open_input(p) as c:
        vs = media._video_stream(c, p)
        cc = vs.codec_context
        look = Look(pix_fmt=cc.pix_fmt or "yuv420p", color_range=_enum(cc.color_range, 0),
                    colorspace=_enum(cc.colorspace, 2), color_primaries=_enum(cc.color_primaries, 2),
                    color_trc=_enum(cc.color_trc, 2))
        sar = vs.sample_aspect_ratio or cc.sample_aspect_ratio
        if sar and sar > 0 and sar != 1:
            look.sar = Fraction(sar)
        # AVFieldOrder: 2 TT, 4 TB (top field coded and shown first / coded first) -> top; 3 BB, 5 BT -> bottom
        look.fields = {2: "top", 4: "top", 3: "bottom", 5: "bottom"}.get(int(cc.field_order or 0), "")
        frame = None
        try:
            for packet in c.demux(vs):
                try:
                    frames = media.decode_packet(packet)
                except av.error.FFmpegError:
                    continue
                if frames:
                    frame = frames[0]
                    break
        except av.error.FFmpegError:
            frame = None
    if frame is not None:
        _from_frame(look, frame)
        if frame.interlaced_frame and not look.fields:
            look.fields = "top"  # interlaced with no field order said: FFmpeg's (and most sources') default
    return look


def _from_frame(look: Look, frame: av.VideoFrame) -> None:
    look.pix_fmt = frame.format.name or look.pix_fmt
    for name in ("color_range", "colorspace", "color_primaries", "color_trc"):
        value = _enum(getattr(frame, name, None), -1)
        unset = RANGE_UNSPECIFIED if name == "color_range" else UNSPECIFIED
        if value >= 0 and value != unset:
            setattr(look, name, value)
    look.rotation = float(getattr(frame, "rotation", 0) or 0)
    for sd in frame.side_data:
        kind, data = sd.type.name, bytes(sd)
        if kind == "DISPLAYMATRIX" and len(data) >= 36:
            matrix = list(struct.unpack("=9i", data[:36]))
            if matrix != [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30]:
                look.display_matrix = matrix
        elif kind == "MASTERING_DISPLAY_METADATA" and len(data) >= 88:
            q = struct.unpack("=20i2i", data[:88])
            rat = [Fraction(q[2 * i], q[2 * i + 1]) if q[2 * i + 1] else Fraction(0) for i in range(10)]
            has_primaries, has_luminance = q[20], q[21]
            if has_primaries and has_luminance:
                look.mastering = {"r": rat[0:2], "g": rat[2:4], "b": rat[4:6], "wp": rat[6:8],
                                  "min": rat[8], "max": rat[9]}
        elif kind == "CONTENT_LIGHT_LEVEL" and len(data) >= 8:
            look.light = struct.unpack("=2I", data[:8])
        elif kind in UNCARRIED_SIDE_DATA and kind not in look.shown_as:
            look.shown_as.append(kind)
    if look.display_matrix is None and look.rotation:
        look.display_matrix = _rotation_matrix(look.rotation)


def _rotation_matrix(degrees: float) -> list[int]:
    """av_display_rotation_set: a counter-clockwise rotation as FFmpeg's 3x3 16.16/2.30 display matrix."""
    import math

    r = math.radians(-degrees)
    c, s = math.cos(r), math.sin(r)
    fix = lambda v: int(round(v * 65536))  # noqa: E731
    return [fix(c), fix(-s), 0, fix(s), fix(c), 0, 0, 0, 1 << 30]


# ------------------------------------------------------------------------------------------- the encoder
def output_colour(look: Look) -> dict[str, int]:
    """The colour fields of the output: the source's where it says them; an RGB source is converted with
    the BT.601 matrix to limited range (swscale's default), so that is what the output says."""
    out = {}
    if look.is_rgb:
        out["color_range"], out["colorspace"] = RANGE_LIMITED, SPC_SMPTE170M
    else:
        rng = RANGE_FULL if look.full_range else look.color_range
        if rng in (RANGE_LIMITED, RANGE_FULL):
            out["color_range"] = rng
        if look.colorspace not in (UNSPECIFIED, SPC_RGB):
            out["colorspace"] = look.colorspace
    if look.color_primaries not in (UNSPECIFIED, 0):
        out["color_primaries"] = look.color_primaries
    if look.color_trc not in (UNSPECIFIED, 0):
        out["color_trc"] = look.color_trc
    return out


def encoder_params(look: Look, codec: str) -> dict[str, str]:
    """x264/x265 parameters for what the codec context cannot carry: HDR10 mastering display and light level."""
    out: dict[str, str] = {}
    if look.mastering:
        m = look.mastering

        def xy(pair):
            return f"({round(pair[0] * 50000)},{round(pair[1] * 50000)})"

        text = (f"G{xy(m['g'])}B{xy(m['b'])}R{xy(m['r'])}WP{xy(m['wp'])}"
                f"L({round(m['max'] * 10000)},{round(m['min'] * 10000)})")
        out["master-display" if codec == "x265" else "mastering-display"] = text
    if look.light and any(look.light):
        out["max-cll" if codec == "x265" else "cll"] = f"{look.light[0]},{look.light[1]}"
    if look.interlaced and codec == "x264":
        out["tff" if look.fields == "top" else "bff"] = "1"  # interlaced coding, the source's field order
    return out


def output_sar(look: Look, src_size: tuple[int, int], out_size: tuple[int, int]) -> Fraction | None:
    """The sample aspect ratio that keeps the source's display aspect at the output's storage size."""
    sw, sh = src_size
    ow, oh = out_size
    sar = look.sar or Fraction(1)
    if (sw, sh) != (ow, oh):
        sar = sar * Fraction(sw * oh, sh * ow)
    if sar == 1:
        return None if look.sar is None else Fraction(1)
    return sar.limit_denominator(65535)


def apply_look(vout, look: Look, src_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    """Set the output video stream's colour, aspect and display matrix (before anything is muxed)."""
    cc = vout.codec_context
    for name, value in output_colour(look).items():
        setattr(cc, name, value)
    sar = output_sar(look, src_size, out_size)
    if sar is not None:
        cc.sample_aspect_ratio = sar
        vout.sample_aspect_ratio = sar
    if look.display_matrix:
        vout.set_display_matrix(look.display_matrix)


def uncarried(look: Look, codec: str, container: str) -> list[str]:
    """What the source says about showing its picture that the output will not keep (see the module's docstring)."""
    kept = {"STEREO3D"} if codec == "x264" or container == "matroska" else set()
    return list(dict.fromkeys(UNCARRIED_SIDE_DATA[k] for k in look.shown_as if k not in kept))


def announce(look: Look, codec: str, out_fmt: str, name: str, container: str) -> None:
    """One warning line for what the encoder cannot keep (conversions, never silent)."""
    lost = uncarried(look, codec, container)
    if lost:
        them = "it" if len(lost) == 1 else "them"
        log.warning("%s: the output does not carry the source's %s: PyAV cannot write %s, so players will show the "
                    "picture without %s", name, " and ".join(lost), them, them)
    if look.interlaced and codec == "x265":
        log.warning("%s is interlaced (%s field first); x265 here codes whole frames, so the output is progressive "
                    "with the two fields woven in each frame (use --codec x264, which keeps them, or deinterlace "
                    "first)", name, look.fields)
    try:
        fmt = av.video.format.VideoFormat(look.pix_fmt)
        bits = max(c.bits for c in fmt.components)
        sub = (fmt.components[1].width if len(fmt.components) > 1 else None)
    except (ValueError, TypeError, IndexError):
        return
    if look.pix_fmt in ("yuv420p", "yuvj420p", "yuv420p10le") and look.pix_fmt.replace("j", "") == out_fmt:
        return
    out_bits = 10 if out_fmt.endswith("10le") else 8
    what = []
    if look.is_rgb:
        what.append("RGB converted to YUV with the BT.601 matrix (limited range)")
    elif look.pix_fmt.startswith(("gray", "ya")):
        what.append("greyscale stored as YUV")
    elif "420" not in look.pix_fmt and sub is not None:
        what.append("chroma subsampled to 4:2:0")
    if bits > out_bits:
        why = (" (H.264 output stays 8-bit, the profile every player decodes; use --codec x265 to keep 10 bits)"
               if codec == "x264" else "")
        what.append(f"{bits}-bit reduced to {out_bits}-bit{why}")
    detail = f": {', '.join(what)}" if what else ""
    log.warning("%s is %s; encoding to %s-bit 4:2:0 (%s)%s", name, look.pix_fmt, out_bits, out_fmt, detail)


def reformat(frame: av.VideoFrame, width: int, height: int, pix_fmt: str, look: Look) -> av.VideoFrame:
    """`frame` at (width, height) in `pix_fmt`, with no range or matrix change for YUV sources (the output says
    the source's range and matrix), and BT.601 limited range for RGB (the output says that)."""
    if frame.format.name == pix_fmt and (frame.width, frame.height) == (width, height):
        return frame
    if look.is_rgb:
        return frame.reformat(width=width, height=height, format=pix_fmt, dst_colorspace="ITU601",
                              interpolation="BICUBIC")
    # YUV -> YUV: the same range on both sides, so swscale scales and subsamples without touching levels.
    rng = "JPEG" if look.full_range else "MPEG"
    src = frame
    if frame.format.name.startswith("yuvj"):  # same planes, the range said in the tag, not the format
        src = _as_format(frame, frame.format.name.replace("yuvj", "yuv"))
    return av.video.reformatter.VideoReformatter().reformat(
        src, width=width, height=height, format=pix_fmt, src_color_range=rng, dst_color_range=rng,
        interpolation="BICUBIC")


def _as_format(frame: av.VideoFrame, fmt: str) -> av.VideoFrame:
    """The same samples under another name (yuvj420p -> yuv420p: identical layout)."""
    import numpy as np

    out = av.VideoFrame(frame.width, frame.height, fmt)
    for dst, src in zip(out.planes, frame.planes):
        rows = np.frombuffer(src, np.uint8).reshape(src.height, src.line_size)
        padded = np.zeros((dst.height, dst.line_size), np.uint8)
        n = min(src.line_size, dst.line_size)
        padded[:, :n] = rows[:, :n]
        dst.update(padded.tobytes())
    out.pts, out.time_base = frame.pts, frame.time_base
    out.color_range = RANGE_FULL
    return out


# ------------------------------------------------------------------------------------------ the container
def copy_container_info(src, dst, *, chapters: bool = True) -> None:
    """The file's metadata (title, ...) and chapters."""
    for key, value in src.metadata.items():
        if key.lower() not in SKIP_TAGS:
            dst.metadata[key] = value
    if chapters:
        try:
            marks = src.chapters()
        except (AttributeError, av.error.FFmpegError):
            marks = []
        if marks:
            dst.set_chapters(marks)


def copy_stream_info(src_stream, dst_stream) -> None:
    """A track's language, title and disposition (default, forced, ...)."""
    for key, value in src_stream.metadata.items():
        if key.lower() not in SKIP_TAGS:
            dst_stream.metadata[key] = value
    try:
        dst_stream.disposition = src_stream.disposition
    except (AttributeError, TypeError, ValueError):
        pass


COVER_CODECS = ("mjpeg", "png")  # the cover pictures MP4 holds ("covr"); FFmpeg's MOV and Matroska muxers write none


def is_cover(packet: av.Packet) -> bool:
    """The one packet of a cover picture track (it has no timestamp; the demuxer's end-of-stream packet is empty)."""
    return bool(packet.size) and bool(packet.stream.disposition & av.stream.Disposition.attached_pic)


AC3_RATES = (32000, 44100, 48000)
# FFmpeg's usual layout for a channel count: a track whose channels have no positions (WMA in ASF says "2
# channels") is encoded with this one, since the AAC encoder refuses a layout without positions
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1"}


def named_layout(layout: av.AudioLayout) -> av.AudioLayout | str:
    """`layout`, or the usual one for its channel count when its channels have no positions."""
    if all(c.name == "NONE" for c in layout.channels):
        return DEFAULT_LAYOUTS.get(layout.nb_channels, layout)
    return layout


class Resampled:
    """A re-encoded audio track's frames for the AAC encoder (planar float, its layout and rate), stamped where the
    source's audio starts and then sample by sample: a track that starts after the picture (0.5 s late) keeps its
    place. Unstamped (the encoder counting from 0) it played 0.5 s early. A gap in the source's audio (its
    timestamps jump ahead by more than GAP_S) stays a gap, as the ffmpeg CLI keeps it, instead of pulling the rest of
    the track earlier."""

    GAP_S = 0.1

    def __init__(self, layout, rate: int):
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self._rate = rate
        self._next: int | None = None  # the next output sample's time, in samples
        self._expected: int | None = None  # where the next input frame should start, in output samples

    def __call__(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        if frame is not None and frame.pts is not None and frame.time_base:
            start = int(round(frame.pts * frame.time_base * self._rate))
            if self._next is None:
                self._next = start
            elif self._expected is not None and start - self._expected > self.GAP_S * self._rate:
                self._next += start - self._expected
            self._expected = start + int(round(frame.samples * self._rate / (frame.sample_rate or self._rate)))
        out = self._resampler.resample(frame)
        for f in out:
            f.pts, f.time_base = self._next or 0, Fraction(1, self._rate)
            self._next = (self._next or 0) + f.samples
        return out


def add_streams(src, dst, fmt: str, name: str = "") -> dict:
    """Output streams for the source's audio and subtitle tracks: {source stream: target}. A target is an
    output stream (packets copied) or a tuple (encoder stream, converter) for a track that must be re-encoded.
    Warns once per track that is re-encoded or dropped."""
    mapping: dict = {}
    name = name or media.display_path(getattr(src, "name", "input"))
    video = next((v for v in src.streams.video if not v.disposition & av.stream.Disposition.attached_pic), None)
    for s in src.streams:
        cc = s.codec_context
        kind = s.type
        if kind == "video":  # the one encoded; cover art copied where the output can hold it; other angles not
            if s.disposition & av.stream.Disposition.attached_pic:
                if fmt == "mp4" and cc is not None and cc.name in COVER_CODECS:
                    mapping[s] = dst.add_stream_from_template(s)
                    copy_stream_info(s, mapping[s])
                else:
                    log.warning("%s: the cover picture (track %d, %s) cannot go into %s; it is not in the output",
                                name, s.index, cc.name if cc is not None else "unknown", _shown_format(fmt))
            elif s is not video:
                log.warning("%s: video track %d is not carried (only the first video track is encoded)", name,
                            s.index)
            continue
        # the codec's own name, not its decoder's: an MP3 track decodes with "mp3float", which no muxer lists, and
        # was re-encoded to AAC where mp4 carries it as it is
        codec = cc.codec.canonical_name if cc is not None else "unknown"
        lang = f" ({s.language})" if s.language else ""
        if kind == "audio":
            if cc is None or not cc.sample_rate:
                log.warning("%s: audio track %d%s has no codec parameters; it is not in the output", name, s.index,
                            lang)
                continue
            allowed = AUDIO_COPY.get(fmt)
            if codec in ("ac3", "eac3") and fmt in ("mp4", "mov") and cc.sample_rate not in AC3_RATES:
                allowed = set()  # RealMedia's 22 kHz AC-3: ISO BMFF defines AC-3 at 32, 44.1 and 48 kHz only
                codec = f"{codec} at {cc.sample_rate} Hz"
            if (allowed is None and codec in dst.supported_codecs) or (allowed is not None and codec in allowed):
                out = dst.add_stream_from_template(s)
                mapping[s] = out
            else:
                enc = dst.add_stream("aac", rate=cc.sample_rate)
                enc.layout = named_layout(cc.layout)
                out = enc
                mapping[s] = (enc, Resampled(enc.layout, enc.rate))
                log.warning("%s: audio track %d%s is %s, which %s does not carry; re-encoded to AAC", name,
                            s.index, lang, codec, _shown_format(fmt))
            copy_stream_info(s, out)
        elif kind == "subtitle":
            target = SUBTITLE_TARGET.get(fmt, "")
            takes = codec in dst.supported_codecs and not (fmt in ("mp4", "mov") and codec != "mov_text")
            if takes:
                out = dst.add_stream_from_template(s)
                mapping[s] = out
            elif codec in TEXT_SUBTITLES and target:
                out = dst.add_stream(target)
                out.codec_context.time_base = s.time_base or Fraction(1, 1000)
                header = getattr(cc, "subtitle_header", None) or _ass_header()
                out.codec_context.subtitle_header = header
                mapping[s] = (out, "subtitle")
                log.warning("%s: subtitle track %d%s is %s, which %s does not carry; converted to %s", name,
                            s.index, lang, codec, _shown_format(fmt), target)
            else:
                log.warning("%s: subtitle track %d%s (%s) cannot go into %s; it is not in the output (use .mkv)",
                            name, s.index, lang, codec, _shown_format(fmt))
                continue
            copy_stream_info(s, out)
        elif kind in ("data", "attachment", "unknown"):
            if kind == "data" and codec in ("none", "unknown", "bin_data") and fmt in ("mp4", "mov"):
                continue  # mp4 timecode/chapter-text tracks: the chapters are carried as chapters
            log.warning("%s: %s track %d (%s) is not carried into the output", name, kind, s.index, codec)
    return mapping


def _shown_format(fmt: str) -> str:
    return {"matroska": "Matroska"}.get(fmt, fmt)


def _ass_header() -> bytes:
    return ("[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
            "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
            "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
            "Alignment, MarginL, MarginR, MarginV, Encoding\n"
            "Style: Default,Sans,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
            "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n").encode()


def mux(packet, target, dst) -> None:
    """Put one source packet (None: flush) of an audio or subtitle track into the output."""
    if not isinstance(target, tuple):
        if packet is None:
            return
        packet.stream = target
        dst.mux(packet)
        return
    enc, conv = target
    if conv == "subtitle":
        if packet is not None:
            _mux_subtitle(packet, enc, dst)
        return
    frames = []
    if packet is not None:
        try:
            frames = media.decode_packet(packet)
        except av.error.InvalidDataError:
            return
    else:
        frames = [None]
    for frame in frames:
        for rs in conv(frame):
            for out in enc.encode(rs):
                dst.mux(out)
        if frame is None:
            for out in enc.encode(None):
                dst.mux(out)


def _mux_subtitle(packet, out_stream, dst) -> None:
    """Decode one text subtitle packet and encode it in the output's text subtitle format, same timing."""
    if packet.pts is None or not packet.size:
        return
    try:
        subs = packet.decode()
    except av.error.FFmpegError:
        return
    tb = packet.time_base
    ctb = out_stream.codec_context.time_base or tb
    for sub in subs:
        for rect in (sub if hasattr(sub, "__iter__") else [sub]):
            ass = getattr(rect, "ass", None)
            if not ass:
                continue
            pts = int(Fraction(packet.pts) * tb / ctb)
            dur = int(Fraction(packet.duration or 0) * tb / ctb)
            text = ass.decode("utf-8", "replace") if isinstance(ass, bytes) else str(ass)
            cue = av.subtitles.subtitle.SubtitleSet.create(text=text.encode(), start=0, end=dur, pts=pts)
            encoded = out_stream.codec_context.encode_subtitle(cue)
            encoded.stream, encoded.time_base = out_stream, ctb
            encoded.pts = encoded.dts = pts
            encoded.duration = dur
            dst.mux(encoded)
