"""`codec-assist semantic {encode,decode,inspect}`: semantic compression (captions + tiny side layers)."""
from __future__ import annotations

import json
from pathlib import Path

from codec_assist.errors import CodecAssistError


def register(sub) -> None:
    from codec_assist.cli import FMT, add_analysis_knobs
    from codec_assist.semantic.stream import DEFAULT_LAYERS, LAYERS

    sem = sub.add_parser("semantic", help="semantic compression: a caption + facts per shot, tiny side layers",
                         formatter_class=FMT, description="Send what each shot is (caption, facts) plus "
                         "optional tiny side layers, and rebuild a video from that. Stream format: docs/BITSTREAM.md.")
    ssub = sem.add_subparsers(dest="semantic_command", required=True, metavar="SUBCOMMAND")

    e = ssub.add_parser("encode", help="video -> semantic stream", formatter_class=FMT,
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
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    add_analysis_knobs(e)
    e.set_defaults(handler=cmd_encode)

    d = ssub.add_parser("decode", help="semantic stream -> video (+ WebVTT captions)", formatter_class=FMT,
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
    d.add_argument("--json", action="store_true", help="print what was written as JSON")
    d.set_defaults(handler=cmd_decode)

    i = ssub.add_parser("inspect", help="validate a stream and print its layer table and captions",
                        formatter_class=FMT)
    i.add_argument("stream", help="semantic stream file")
    i.add_argument("--json", action="store_true", help="print the scene layer and layer sizes as JSON")
    i.set_defaults(handler=cmd_inspect)


def _layers(text: str) -> tuple[str, ...]:
    from codec_assist.semantic.stream import check_layers

    names = [n.strip() for n in text.split(",") if n.strip() and n.strip() != "none"]
    return check_layers(["scene", *names])


def format_layers(stats, container_bytes: int, total: int, pixels: int, duration: float) -> str:
    head = f"{'layer':<10} {'codec':<10} {'bytes':>7} {'kb/s':>8} {'bpp':>10}"
    lines = [head, "-" * len(head)]
    for s in stats:
        lines.append(f"{s.name:<10} {s.codec:<10} {s.stored_bytes:>7} {s.kbps:>8.3f} {s.bpp:>10.6f}")
    lines.append(f"{'container':<10} {'':<10} {container_bytes:>7} {container_bytes * 8 / duration / 1000:>8.3f} "
                 f"{container_bytes * 8 / pixels:>10.6f}")
    lines.append(f"{'total':<10} {'':<10} {total:>7} {total * 8 / duration / 1000:>8.3f} {total * 8 / pixels:>10.6f}")
    return "\n".join(lines)


def semantic_report(inp: Path, out: Path, blob: bytes, scene, info: dict):
    """What `semantic encode --report` writes: sizes per layer and the per-shot facts."""
    from codec_assist import schemas

    pixels = scene.width * scene.height * scene.frames
    return schemas.SemanticReport(
        input=str(inp), output=str(out), width=scene.width, height=scene.height, frames=scene.frames,
        duration=info["duration"], total_bytes=len(blob), container_bytes=info["container_bytes"],
        total_kbps=len(blob) * 8 / info["duration"] / 1000, total_bpp=len(blob) * 8 / pixels,
        layers=info["layers"], shots=scene.shots, seconds=info["seconds"])


def cmd_encode(args) -> int:
    from codec_assist import schemas
    from codec_assist.cli import _analyze_options
    from codec_assist.media.safeio import atomic_write_bytes, check_output
    from codec_assist.semantic.stream import SemanticOptions, encode_video

    inp, out = Path(args.input), Path(args.output)
    check_output(out, inp)
    if args.report:
        check_output(args.report, inp)
    if not 8 <= args.thumb_width <= 512:
        raise CodecAssistError("--thumb-width must be 8..512 px")
    if not 4 <= args.sketch_width <= 1024:
        raise CodecAssistError("--sketch-width must be 4..1024 px")
    if not 1 <= args.palette <= 64:
        raise CodecAssistError("--palette must be 1..64 colours")
    opt = SemanticOptions(layers=_layers(args.layers), thumb_width=args.thumb_width, thumb_psnr=args.thumb_psnr,
                          palette_k=args.palette, sketch_width=args.sketch_width, captioner=args.captioner)
    blob, scene, info = encode_video(inp, opt, _analyze_options(args), progress=not args.quiet)
    atomic_write_bytes(out, blob)
    pixels = scene.width * scene.height * scene.frames
    report = semantic_report(inp, out, blob, scene, info)
    if args.report:
        schemas.save(report, args.report)
    if args.json:
        print(report.model_dump_json(indent=2, by_alias=True))
    else:
        print(f"{inp.name}: {len(scene.shots)} shots, {scene.width}x{scene.height}, {scene.frames} frames "
              f"-> {out} ({len(blob)} bytes) in {info['seconds']:.1f}s")
        print(format_layers(info["layers"], info["container_bytes"], len(blob), pixels, info["duration"]))
        for s in scene.shots:
            print(f"  [{s.start}-{s.end}) {s.caption}")
    return 0


def cmd_decode(args) -> int:
    from codec_assist.semantic.generators import build_generator, write_video
    from codec_assist.media.safeio import check_output
    from codec_assist.semantic.stream import read_file

    src, out = Path(args.stream), Path(args.output)
    check_output(out, src)
    if out.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise CodecAssistError(f"output {out} must be .mp4 (H.264 with a mov_text caption track)")
    vtt = Path(args.vtt) if args.vtt else out.with_suffix(".vtt")
    check_output(vtt, src)
    if vtt.resolve() == out.resolve():
        raise CodecAssistError("--vtt must differ from the output video")
    if not 0 <= args.crf <= 51:
        raise CodecAssistError("--crf must be 0..51")
    if not 1 <= args.steps <= 1000 or not 0 < args.strength <= 1:
        raise CodecAssistError("--steps must be 1..1000 and --strength in (0, 1]")
    stream = read_file(src)  # validates everything before any output is created
    gen = build_generator(args.generator, model=args.model, folder=args.images, steps=args.steps,
                          strength=args.strength)
    written = write_video(stream, gen, out, vtt=vtt, crf=args.crf, subtitles=not args.no_subtitle_track,
                          progress=not args.quiet)
    if args.json:
        print(json.dumps(written, indent=2))
    else:
        s = stream.scene
        print(f"{out}: {written['width']}x{written['height']}, {s.frames} frames at {written['fps']} fps, "
              f"{len(s.shots)} shots by the {gen.name} generator; captions in {vtt}"
              + (" and in a mov_text track" if written["subtitle_track"] else ""))
    return 0


def cmd_inspect(args) -> int:
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
