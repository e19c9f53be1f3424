"""`codec-assist semantic {encode,decode,inspect}`: semantic compression (captions + tiny side layers)."""
from __future__ import annotations

import json
from pathlib import Path

from codec_assist.cli.common import add_analysis_knobs, add_global_flags, analyze_options, limits
from codec_assist.errors import CodecAssistError


def register(sub) -> None:
    from codec_assist.semantic.stream import DEFAULT_LAYERS, LAYERS

    sem = sub.add_parser("semantic", help="semantic compression: a caption + facts per shot, tiny side layers",
                         description="Send what each shot is (caption, facts) plus optional tiny side layers, and "
                         "rebuild a video from that. Stream format: docs/BITSTREAM.md.")
    add_global_flags(sem, writes=False, reads_video=False)
    ssub = sem.add_subparsers(dest="semantic_command", required=True, metavar="SUBCOMMAND",
                              parser_class=type(sem))

    e = ssub.add_parser("encode", help="video -> semantic stream",
                        description="Analyse the video, describe each shot (caption + facts) and pack the "
                        "chosen layers into a compact stream. Prints bytes, kb/s and bits per pixel per layer.")
    e.add_argument("input", help="video file")
    e.add_argument("-o", "--output", required=True, help="stream file to write (e.g. clip.cas)")
    e.add_argument("--layers", default=",".join(n for n in DEFAULT_LAYERS if n != "scene"),
                   help=f"side layers to add to the always-present scene layer, comma-separated, from "
                   f"{', '.join(n for n in LAYERS if n != 'scene')}; 'none' for captions and facts only")
    e.add_argument("--thumb-width", type=int, default=48, help="thumbnail width in px (height keeps the aspect)")
    e.add_argument("--thumb-psnr", type=float, default=30.0,
                   help="quality target of the thumbnail coding, dB at thumbnail size (smallest coding reaching it)")
    e.add_argument("--palette", type=int, default=4, help="colours per shot in the palette layer")
    e.add_argument("--sketch-width", type=int, default=64, help="edge-map width in px")
    e.add_argument("--captioner", default="grammar",
                   help="'grammar' (offline, composed from the facts) or a transformers image-to-text model folder")
    e.add_argument("--report", help="write a JSON report (layers, bytes, bpp, facts) here")
    add_analysis_knobs(e)
    add_global_flags(e)
    e.set_defaults(handler=run_encode)

    d = ssub.add_parser("decode", help="semantic stream -> video (+ WebVTT captions)",
                        description="Rebuild a video with the original frame rate, frame count and shot timing. "
                        "The captions go in a mov_text subtitle track and in a .vtt file beside the video.")
    d.add_argument("stream", help="semantic stream file")
    d.add_argument("-o", "--output", required=True, help="output video (.mp4)")
    d.add_argument("--generator", choices=["layers", "diffusion", "retrieval"], default="layers",
                   help="picture per shot: layers (no weights), diffusion (--model), retrieval (--images)")
    d.add_argument("--model", help="diffusers pipeline folder (or a hub id in the local cache) for --generator diffusion")
    d.add_argument("--steps", type=int, default=20, help="diffusion steps")
    d.add_argument("--strength", type=float, default=0.6, help="image-to-image strength when a thumbnail exists")
    d.add_argument("--images", help="folder of images for --generator retrieval (NAME.txt beside an image describes it)")
    d.add_argument("--vtt", help="WebVTT path (default: the output with .vtt)")
    d.add_argument("--no-subtitle-track", action="store_true", help="do not put the captions inside the mp4")
    d.add_argument("--crf", type=float, default=28, help="x264 CRF of the rebuilt video")
    add_global_flags(d, reads_video=False)
    d.set_defaults(handler=run_decode)

    i = ssub.add_parser("inspect", help="validate a stream and print its layer table and captions")
    i.add_argument("stream", help="semantic stream file")
    add_global_flags(i, writes=False, reads_video=False)
    i.set_defaults(handler=run_inspect)


def _layers(text: str) -> tuple[str, ...]:
    from codec_assist.semantic.stream import check_layers

    names = [n.strip() for n in text.split(",") if n.strip() and n.strip() != "none"]
    return check_layers(["scene", *names])


def run_encode(args) -> int:
    from codec_assist import api
    from codec_assist.semantic.stream import SemanticOptions, format_layers

    if not 8 <= args.thumb_width <= 512:
        raise CodecAssistError("--thumb-width must be 8..512 px")
    if not 4 <= args.sketch_width <= 1024:
        raise CodecAssistError("--sketch-width must be 4..1024 px")
    if not 1 <= args.palette <= 64:
        raise CodecAssistError("--palette must be 1..64 colours")
    opt = SemanticOptions(layers=_layers(args.layers), thumb_width=args.thumb_width, thumb_psnr=args.thumb_psnr,
                          palette_k=args.palette, sketch_width=args.sketch_width, captioner=args.captioner)
    report = api.semantic_encode(args.input, args.output, opt, analyze_options=analyze_options(args),
                                 report=args.report, limits=limits(args), overwrite=args.overwrite,
                                 progress=not args.quiet)
    if args.json:
        print(report.model_dump_json(indent=2, by_alias=True))
        return 0
    pixels = report.width * report.height * report.frames
    print(f"{Path(report.input).name}: {len(report.shots)} shots, {report.width}x{report.height}, "
          f"{report.frames} frames -> {args.output} ({report.total_bytes} bytes) in {report.seconds:.1f}s")
    print(format_layers(report.layers, report.container_bytes, report.total_bytes, pixels, report.duration))
    for s in report.shots:
        print(f"  [{s.start}-{s.end}) {s.caption}")
    return 0


def run_decode(args) -> int:
    from codec_assist import api

    written = api.semantic_decode(args.stream, args.output, generator=args.generator, model=args.model,
                                  images=args.images, steps=args.steps, strength=args.strength, vtt=args.vtt,
                                  subtitle_track=not args.no_subtitle_track, crf=args.crf, overwrite=args.overwrite,
                                  progress=not args.quiet)
    if args.json:
        print(json.dumps(written, indent=2))
    else:
        print(f"{args.output}: {written['width']}x{written['height']}, {written['frames']} frames at "
              f"{written['fps']} fps, {written['shots']} shots by the {written['generator']} generator; captions in "
              f"{written['vtt']}" + (" and in a mov_text track" if written["subtitle_track"] else ""))
    return 0


def run_inspect(args) -> int:
    from codec_assist.semantic.stream import read_file

    stream = read_file(args.stream)
    s = stream.scene
    pixels = s.width * s.height * s.frames
    duration = s.frames / stream.fps
    if args.json:
        print(json.dumps({"scene": s.model_dump(), "stored_bytes": stream.stored, "size": stream.size}, indent=2))
        return 0
    print(f"{args.stream}: {stream.size} bytes, {s.width}x{s.height}, {s.frames} frames at "
          f"{s.fps_num}/{s.fps_den} fps ({float(duration):.2f} s), {len(s.shots)} shots, captioner {s.captioner}")
    for name, b in stream.stored.items():
        print(f"  {name:<10} {b:>7} bytes {b * 8 / float(duration) / 1000:>8.3f} kb/s {b * 8 / pixels:>10.6f} bpp")
    for sh in s.shots:
        print(f"  [{sh.start}-{sh.end}) {sh.caption}")
    return 0
