"""Export formats, checked by the real consumers where this machine has them (x264, x265, ffmpeg CLIs)."""
from __future__ import annotations

import shutil
import subprocess

import av
import numpy as np
import pytest

import codec_assist.media.decode as media

from codec_assist import schemas
from codec_assist.cli import main
from codec_assist.export.formats import SVT_MAX_SEGMENTS, render
from codec_assist.planning.plan import make_plan
from codec_assist.schemas import Analysis, ImportanceInfo, Shot, Zone

FRAMES = 60  # bikes.mp4: cut at 30 -> two shots in the first 60 frames


@pytest.fixture(scope="module")
def plan_files(sample, tmp_path_factory):
    """A real-size bikes plan (640x272, 60 frames, cut at 30) with a face-like favoured box and two zones."""
    info = media.probe(sample("bikes.mp4")).model_copy(update={"frame_count": FRAMES})
    frames = np.arange(0, FRAMES, 8)
    grid = np.zeros((len(frames), 17, 40), np.float32)
    grid[:, 4:12, 10:20] = 1.0  # favoured: x 160-320, y 64-192 (16 px cells)
    analysis = Analysis(video=info, proxy_width=320, proxy_height=136, analysis_frames=frames.tolist(),
                        shots=[Shot(start_frame=0, end_frame=30, cut_type="start"), Shot(start_frame=30, end_frame=60)],
                        importance=ImportanceInfo(grid_h=17, grid_w=40))
    arrays = {"importance/frames": frames, "importance/scalar": grid.max(axis=(1, 2)), "importance/grid": grid}
    plan, plan_arrays = make_plan(analysis, arrays)
    plan.zones = [Zone(start_frame=0, end_frame=29, bitrate_factor=2.5), Zone(start_frame=30, end_frame=59,
                                                                              bitrate_factor=0.6)]
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    schemas.save(plan, path, plan_arrays)
    return path, plan, plan_arrays


def _y4m(src, frames: int) -> bytes:
    """The first `frames` frames as a y4m stream (written by PyAV's FFmpeg: no ffmpeg CLI needed)."""
    import io
    from fractions import Fraction

    buf = io.BytesIO()
    with av.open(buf, "w", format="yuv4mpegpipe") as out:
        s = out.add_stream("wrapped_avframe", rate=25)
        s.width, s.height, s.pix_fmt = 640, 272, "yuv420p"
        for i, f in zip(range(frames), media.iter_frames(src)):
            f = f.reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, 25)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return buf.getvalue()


def _encode_with_filters(src, filters: str, start: int, end: int, out) -> None:
    """Encode frames [start, end) through an FFmpeg filter chain (PyAV's FFmpeg: same filters as the CLI)."""
    from fractions import Fraction

    with av.open(str(out), "w") as dst:
        vs = dst.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 640, 272, "yuv420p"
        vs.bit_rate = 300_000
        vs.options = {"preset": "veryfast"}  # ultrafast turns AQ off, and with it ROI
        g = av.filter.Graph()
        node = buf = g.add_buffer(width=640, height=272, format="yuv420p", time_base=Fraction(1, 25))
        for item in filter(None, filters.split(",")):
            name, _, args = item.partition("=")
            nxt = g.add(name, args or None)
            node.link_to(nxt)
            node = nxt
        sink = g.add("buffersink")
        node.link_to(sink)
        g.configure()
        for i, f in enumerate(media.iter_frames(src)):
            if i >= end:
                break
            if i < start:
                continue
            f = f.reformat(format="yuv420p")
            f.pts, f.time_base = i - start, Fraction(1, 25)
            buf.push(f)
            o = sink.pull()
            assert filters == "" or o.side_data  # addroi attached its regions
            for p in vs.encode(o):
                dst.mux(p)
        for p in vs.encode(None):
            dst.mux(p)


def _per_frame_psnr(src, coded, frames: int) -> np.ndarray:
    ref = [media.luma(f).copy() for _, f in zip(range(frames), media.iter_frames(src))]
    with av.open(str(coded)) as c:
        dec = [media.luma(f).copy() for f in c.decode(video=0)]
    assert len(dec) == frames
    return np.array([10 * np.log10(255**2 / max(1e-9, np.mean((a.astype(float) - b) ** 2))) for a, b in zip(ref, dec)])


@pytest.mark.parametrize("encoder", ["x264", "x265"])
def test_zones_are_accepted_by_the_real_cli_and_move_quality(encoder, plan_files, sample, tmp_path):
    path, plan, arrays = plan_files
    zones = render(plan, arrays, f"{encoder}-zones").decode().strip()
    assert zones == "0,29,b=2.5/30,59,b=0.6"
    y4m = _y4m(sample("bikes.mp4"), FRAMES)
    psnr = {}
    for tag, extra in (("plain", []), ("zones", ["--zones", zones])):
        out = tmp_path / f"{tag}.{'264' if encoder == 'x264' else 'hevc'}"
        cmd = [f"/usr/bin/{encoder}", "--crf", "30", "--preset", "ultrafast", *extra, "-o", str(out)]
        cmd += ["--demuxer", "y4m", "-"] if encoder == "x264" else ["--y4m", "--input", "-", "--log-level", "error"]
        r = subprocess.run(cmd, input=y4m, capture_output=True)
        assert r.returncode == 0, r.stderr.decode()[-500:]
        psnr[tag] = _per_frame_psnr(sample("bikes.mp4"), out, FRAMES)
    gain = psnr["zones"] - psnr["plain"]
    assert gain[:30].mean() > 1.0  # b=2.5: ~ -8 QP in the first zone
    assert gain[30:].mean() < -0.5  # b=0.6: ~ +4 QP in the second


def test_svt_roi_map_format(plan_files, sample, tmp_path):
    path, plan, arrays = plan_files
    lines = render(plan, arrays, "svt-roi").decode().splitlines()
    assert len(lines) == FRAMES
    blocks = -(-640 // 64) * -(-272 // 64)  # 10 x 5
    for n, line in enumerate(lines):
        fields = line.split(" ")
        assert fields[0] == str(n) and len(fields) == 1 + blocks
        values = np.array([int(v) for v in fields[1:]])
        assert len(set(values)) <= SVT_MAX_SEGMENTS and np.abs(values).max() <= 255
    first = np.array([int(v) for v in lines[10].split()[1:]]).reshape(5, 10)
    assert first[1:3, 2:5].mean() < 0 < first[:, 7:].mean()  # favoured box gets lower qindex, the rest higher
    app = shutil.which("SvtAv1EncApp")
    if app:  # SVT-AV1 >= 1.6 reads the file; Debian 12's 1.4.1 has no --roi-map-file (docs/EXPORT.md)
        roi = tmp_path / "roi.txt"
        roi.write_text("\n".join(lines) + "\n")
        help_text = subprocess.run([app, "--help"], capture_output=True, text=True).stdout
        if "roi-map-file" in help_text:
            y4m = _y4m(sample("bikes.mp4"), FRAMES)
            r = subprocess.run([app, "-i", "stdin", "-b", str(tmp_path / "o.ivf"), "--preset", "12",
                                "--roi-map-file", str(roi)], input=y4m, capture_output=True)
            assert r.returncode == 0


def test_addroi_filters_run_in_ffmpeg_and_favour_the_box(plan_files, sample, tmp_path):
    path, plan, arrays = plan_files
    lines = render(plan, arrays, "addroi").decode().splitlines()
    assert [tuple(map(int, ln.split(" ")[:2])) for ln in lines] == [(0, 30), (30, 60)]
    start, end, filters = lines[0].split(" ", 2)
    assert filters.startswith("addroi=x=160:y=64:")
    src = sample("bikes.mp4")
    if shutil.which("ffmpeg"):  # the CLI, as in docs/EXPORT.md
        vf = f"trim=start_frame={start}:end_frame={end},setpts=PTS-STARTPTS,{filters}"
        r = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", vf, "-c:v", "libx264",
                            "-preset", "veryfast", "-b:v", "300k", str(tmp_path / "cli.mp4")], capture_output=True)
        assert r.returncode == 0, r.stderr[-500:]
    box = np.s_[64:192, 160:320]
    gains = []
    for tag, chain in (("plain", ""), ("roi", filters)):
        out = tmp_path / f"{tag}.mp4"
        _encode_with_filters(src, chain, int(start), int(end), out)
        ref = [media.luma(f)[box].astype(float) for _, f in zip(range(30), media.iter_frames(src))]
        with av.open(str(out)) as c:
            dec = [media.luma(f)[box].astype(float) for f in c.decode(video=0)]
        gains.append(np.mean([10 * np.log10(255**2 / np.mean((a - b) ** 2)) for a, b in zip(ref, dec)]))
    assert gains[1] > gains[0] + 0.5  # the rectangle got the bits


def test_qp_arrays_and_keyframe_formats(plan_files, tmp_path, sample):
    path, plan, arrays = plan_files
    npy = tmp_path / "qp.npy"
    assert main(["export", str(path), "--format", "qp-npy", "-o", str(npy)]) == 0
    qp = np.load(npy)
    assert qp.shape == (FRAMES, plan.blocks_y, plan.blocks_x) and qp.dtype == np.float32
    assert qp[:, 5, 12].max() < 0 < qp[:, 0, 0].min()
    csv = render(plan, arrays, "qp-csv").decode().splitlines()
    assert csv[0] == "frame,block_row,block_col,qp_offset" and len(csv) == 1 + qp.size
    f, r, c, v = csv[1 + 5 * plan.blocks_x + 12].split(",")
    assert (int(f), int(r), int(c)) == (0, 5, 12) and float(v) == pytest.approx(qp[0, 5, 12])
    kf = render(plan, arrays, "keyframes").decode().splitlines()
    assert kf == ["frame,time_s", "0,0.000000", "30,1.200000"]
    assert render(plan, arrays, "force-key-frames").decode().strip() == "0.000000,1.200000"
    # the qpfile really forces IDRs in the x264 CLI: put one at frame 45 as well (no cut there)
    qpfile = tmp_path / "kf.qp"
    qpfile.write_text(render(plan, arrays, "qpfile").decode() + "45 I -1\n")
    out = tmp_path / "kf.264"
    r = subprocess.run(["/usr/bin/x264", "--crf", "30", "--preset", "ultrafast", "--scenecut", "0", "--qpfile",
                        str(qpfile), "-o", str(out), "--demuxer", "y4m", "-"], input=_y4m(sample("bikes.mp4"), FRAMES),
                       capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-300:]
    with av.open(str(out)) as c:
        keys = [i for i, f in enumerate(c.decode(video=0)) if f.key_frame]
    assert keys == [0, 30, 45]


def test_export_errors_are_one_line(plan_files, tmp_path, capsys):
    path, plan, arrays = plan_files
    bare = tmp_path / "bare.json"
    schemas.save(plan.model_copy(update={"zones": []}), bare, arrays)
    assert main(["export", str(bare), "--format", "x264-zones", "-o", str(tmp_path / "z.txt")]) == 2
    assert "no zones" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.json"), "--format", "keyframes", "-o", "-"]) == 2
    assert not (tmp_path / "z.txt").exists()
