"""Issue 16: an assisted encode pays only for what can change its plan, frees its models before the encoder,
and its report says where the time went."""
from __future__ import annotations

import json
import logging
import time

import pytest

import codec_assist as ca
from codec_assist import schemas
from codec_assist.analysis.pipeline import AnalyzeOptions, unused_analyzers
from codec_assist.schemas import FocusPrompt, StageSeconds
from conftest import modules_loaded_by

DEFAULT = ["shots", "saliency", "faces", "text", "imagenet", "speech", "audio"]
CHEAP = ["saliency", "imagenet", "speech", "audio"]  # enough to decide what runs, fast to run


def test_what_a_plan_cannot_use_is_left_out_and_why():
    plan_only = AnalyzeOptions(for_plan=True)
    skipped = unused_analyzers(plan_only, DEFAULT, has_audio=True)
    assert set(skipped) == {"speech", "imagenet"}
    assert skipped["speech"].startswith("speech transcription skipped:") and "--focus" in skipped["speech"]
    # a focus prompt uses both; so does anything that is not only a plan (analyze, tags, a report page)
    assert unused_analyzers(AnalyzeOptions(for_plan=True, focus=[FocusPrompt(text="the speaker")]), DEFAULT) == {}
    assert unused_analyzers(AnalyzeOptions(), DEFAULT) == {}
    # asked for by name (--asr): Whisper runs, and its transcript is a query ImageNet's blobs can answer
    assert unused_analyzers(AnalyzeOptions(for_plan=True, asr=True), DEFAULT) == {}
    # subtitles are queries too; an ImageNet weight above 0 makes its map count without any query
    assert set(unused_analyzers(plan_only, DEFAULT + ["subtitles"])) == {"speech"}
    weighted = AnalyzeOptions(for_plan=True, weights={**plan_only.weights, "imagenet": 0.3})
    assert set(unused_analyzers(weighted, DEFAULT)) == {"speech"}
    # no audio: nothing to transcribe and no transcript to attend with
    assert set(unused_analyzers(plan_only, DEFAULT, has_audio=False)) == {"imagenet"}


class Calls:
    """Calls counted in a file: the encode's analysis runs in a forked child (analysis.forked), whose memory
    this process does not see."""

    def __init__(self, path):
        self.path = path
        path.write_text("")

    def add(self, name: str) -> None:
        with open(self.path, "a") as f:
            f.write(name + "\n")

    def __getitem__(self, name: str) -> int:
        return self.path.read_text().split().count(name)

    def __eq__(self, other) -> bool:
        return {k: self[k] for k in other} == other


@pytest.fixture
def spies(monkeypatch, tmp_path):
    """Record Whisper and ImageNet model loads (and Whisper calls) instead of running them."""
    import analyzers.imagenet
    import analyzers.speech

    calls = Calls(tmp_path / "calls.txt")

    def transcribe(self, pcm, duration):
        calls.add("whisper")
        return schemas.Transcript(source="asr:test", language="en", segments=[])

    def imagenet():
        calls.add("imagenet")
        raise AssertionError("ImageNet loaded")

    monkeypatch.setattr(analyzers.speech.SpeechTranscript, "transcribe", transcribe)
    monkeypatch.setattr(analyzers.imagenet, "imagenet_classifier", imagenet)
    return calls


def test_assisted_encode_without_focus_skips_whisper_and_says_so(sample, tmp_path, spies, caplog):
    jwp = sample("jwpIntro.mp4")
    with caplog.at_level(logging.INFO, logger="codec_assist"):
        ca.encode(jwp, tmp_path / "a.mp4", analyze_options=AnalyzeOptions(analyzers=CHEAP), preset="ultrafast",
                  bitrate="300k")
    assert spies == {"whisper": 0, "imagenet": 0}
    said = [r.getMessage() for r in caplog.records if "transcription skipped" in r.getMessage()]
    assert len(said) == 1 and "no --focus prompt" in said[0]


def test_assisted_encode_with_focus_transcribes_the_speech(sample, tmp_path, spies, monkeypatch):
    import numpy as np

    import codec_assist.fusion.attention as attention

    # the focus prompt's embedding is not what this is about: keep MiniLM (and torch) out of the test's time
    monkeypatch.setattr(attention, "embed_cached", lambda texts, space=None: np.eye(len(texts), 384, dtype=np.float32))
    jwp = sample("jwpIntro.mp4")
    opt = AnalyzeOptions(analyzers=["saliency", "speech", "audio"], focus=[FocusPrompt(text="the speaker")])
    ca.encode(jwp, tmp_path / "a.mp4", analyze_options=opt, preset="ultrafast", bitrate="300k")
    assert spies["whisper"] == 1


def test_plain_analyze_still_transcribes(sample, spies):
    analysis, _ = ca.analyze(sample("jwpIntro.mp4"), AnalyzeOptions(analyzers=["speech", "audio"]))
    assert spies["whisper"] == 1
    assert {r.name: r.status for r in analysis.analyzers} == {"speech": "ok", "audio": "ok"}


def test_report_stages_add_up_to_no_more_than_the_wall_time(sample, tmp_path):
    clip = sample("bikes.mp4")
    t = time.perf_counter()
    rep = ca.encode(clip, tmp_path / "a.mp4", analyze_options=AnalyzeOptions(analyzers=["shots", "saliency"]),
                    preset="ultrafast", bitrate="300k", report=tmp_path / "r.json")
    wall = time.perf_counter() - t
    st = rep.result.timing
    assert st is not None and set(st.analyzers) == {"shots", "saliency"}
    assert st.decode > 0 and st.encode > 0 and st.plan > 0 and st.evaluation > 0
    assert st.staged() <= st.wall + 1e-6 and st.wall <= wall
    assert abs(st.staged() + st.other - st.wall) < 1e-6
    # the report on disk carries them (schema version 2 and later)
    raw = json.loads((tmp_path / "r.json").read_text())
    assert raw["version"] >= schemas.TIMED_VERSION and raw["result"]["timing"]["analyzers"].keys() == {"shots", "saliency"}
    plain = ca.encode(clip, tmp_path / "p.mp4", preset="ultrafast", bitrate="300k", assist=False)
    assert plain.result.timing.analyzers == {} and plain.result.timing.decode > 0
    assert plain.result.timing.staged() <= plain.result.timing.wall


def test_version_1_reports_still_load(tmp_path):
    rep = ca.EncodeReport(input=schemas.VideoInfo(path="in.mp4", container="mp4", codec="h264", width=64, height=48,
                                                  fps=25.0, time_base="1/25", frame_count=10, duration=0.4,
                                                  pix_fmt="yuv420p"),
                          result=schemas.EncodeResult(output="o.mp4", codec="x264", preset="medium",
                                                      rate=schemas.RateControl(mode="crf", crf=23), assisted=True,
                                                      frames=10, keyframes=[0], bitrate_kbps=1.0, seconds_encode=0.1))
    raw = json.loads(rep.model_dump_json(by_alias=True))
    raw["version"] = 1
    del raw["result"]["timing"]
    (tmp_path / "old.json").write_text(json.dumps(raw))
    old, _ = schemas.load(ca.EncodeReport, tmp_path / "old.json")
    assert old.result.timing is None
    raw["version"] = 4
    (tmp_path / "new.json").write_text(json.dumps(raw))
    with pytest.raises(ca.SchemaError, match="version 4 is not supported"):
        schemas.load(ca.EncodeReport, tmp_path / "new.json")


def test_stage_seconds_line():
    st = StageSeconds(decode=0.5, analyzers={"shots": 0.25}, encode=2.0).closed(3.0)
    assert st.other == pytest.approx(0.25)
    assert st.describe() == "decode 0.50s, shots 0.25s, encode 2.00s, other 0.25s (wall 3.00s)"


def test_an_encode_without_focus_loads_no_torch_whisper_or_text_model(sample, tmp_path):
    """A cold process, as a user runs it: the default assisted encode of a talking head imports none of them."""
    jwp = sample("jwpIntro.mp4")
    code = ("import codec_assist as ca\n"
            f"ca.encode({str(jwp)!r}, {str(tmp_path / 'a.mp4')!r}, preset='ultrafast', bitrate='300k')")
    heavy = ("torch", "faster_whisper", "ctranslate2", "sentence_transformers", "keybert", "transformers")
    assert modules_loaded_by(code, heavy) == []


def test_the_shot_detector_starts_without_running_ffmpeg():
    """A cold process: importing PySceneDetect for the shot analyzer spawns no ffmpeg probe (its `-v quiet` call,
    or imageio-ffmpeg's `-version` check of its fallback binary) and leaves imageio-ffmpeg unimported, while a
    later import of imageio-ffmpeg (the VMAF path) still works."""
    code = ("import subprocess\n"
            "calls = []\n"
            "real = subprocess.Popen.__init__\n"
            "def spy(self, args, *a, **k):\n"
            "    calls.append(args)\n"
            "    real(self, args, *a, **k)\n"
            "subprocess.Popen.__init__ = spy\n"
            "from analyzers.shots import SceneDetectShots\n"
            "from analyzers.base import AnalysisContext\n"
            "from codec_assist.schemas import VideoInfo\n"
            "video = VideoInfo(path='x.mp4', container='mp4', codec='h264', width=320, height=180, fps=25.0,\n"
            "                  time_base='1/25', frame_count=10, duration=0.4, pix_fmt='yuv420p')\n"
            "SceneDetectShots().start(AnalysisContext(video=video, proxy_w=320, proxy_h=180, grid_h=45, grid_w=80,\n"
            "                                         analysis_frames=frozenset(), analyzers=frozenset()))\n"
            "assert calls == [], calls\n")
    assert modules_loaded_by(code, ("scenedetect", "imageio_ffmpeg")) == ["scenedetect"]
    assert modules_loaded_by(code + "import imageio_ffmpeg\n", ("imageio_ffmpeg",)) == ["imageio_ffmpeg"]


def test_the_cli_builds_only_the_command_it_runs():
    from codec_assist.cli import _command, build_parser

    assert _command(["-q", "--max-duration", "60", "encode", "in.mp4"]) == "encode"
    assert _command(["--max-duration", "compare", "tag"]) == "tag"
    assert _command(["--help"]) is None and _command(["bogus"]) is None
    sub = next(a for a in build_parser("encode")._actions if a.dest == "command")
    assert list(sub.choices) == ["encode"]
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "semantic" in sub.choices and "batch" in sub.choices


def test_batch_encodes_analyse_for_the_plan_too():
    from codec_assist.scale.batch import batch_options

    enc = batch_options("encode")["analyze"]
    assert enc["for_plan"] is True and "asr" not in enc
    assert AnalyzeOptions(**enc).model_fields_set >= {"for_plan"} and "asr" not in AnalyzeOptions(**enc).model_fields_set
    assert batch_options("encode", analyze_options=AnalyzeOptions(asr=True))["analyze"]["asr"] is True
    assert batch_options("analyze")["analyze"]["for_plan"] is False


def test_read_ahead_yields_the_decode_in_order_and_stops_cleanly(sample):
    """The analysis decode runs ahead in a worker thread: same frames, in order; stopping early closes the file
    in the worker (no thread left behind); a decode error is raised where the frames are read."""
    import threading

    import numpy as np

    import codec_assist.media.decode as media

    clip = sample("bikes.mp4")
    info = media.probe(clip)
    size = media.proxy_size(info.width, info.height)
    direct = [(i, p.gray) for _, (i, _f, p) in zip(range(40), media.iter_proxy(clip, size))]
    closed = []

    def frames():
        try:
            yield from ((i, p.gray) for i, _f, p in media.iter_proxy(clip, size))
        finally:
            closed.append(threading.current_thread().name)

    ahead = media.ReadAhead(frames(), depth=4)
    got = [next(ahead) for _ in range(40)]
    ahead.close()
    assert [i for i, _ in got] == list(range(40))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, direct))
    assert closed == ["read-ahead"] and not any(t.name == "read-ahead" for t in threading.enumerate())
    with pytest.raises(StopIteration):
        next(ahead)

    short = media.Limits(max_duration=1.0)  # the container is not checked here: the decoded frames' times are
    with media.ReadAhead(media.iter_proxy(clip, size, limits=short), depth=4) as ahead:
        with pytest.raises(ca.InputError, match="too long"):
            for _ in ahead:
                pass
