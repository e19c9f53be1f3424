"""The shot lane's cost per proxy frame: PySceneDetect's two AdaptiveDetectors each doing their own HSV/edge pass
(stock) against both reading one analyzers.shots.FrameChange (what SceneDetectShots runs), on the same frames, with
a check that every frame score and every cut is identical (issue 16).

    python benchmarks/shot_lane.py samples/media/*.mp4 samples/media/*.avi samples/media/*.mpg
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzers.shots import FrameChange, _no_ffmpeg_probe, _shared_adaptive_detector  # noqa: E402
from codec_assist.media.decode import iter_proxy, probe, proxy_size  # noqa: E402


def main(paths: list[str]) -> int:
    with _no_ffmpeg_probe():
        from scenedetect.common import FrameTimecode
        from scenedetect.detectors import AdaptiveDetector, ContentDetector
    weights = [ContentDetector.DEFAULT_COMPONENT_WEIGHTS, ContentDetector.Components(0.0, 0.0, 0.0, 1.0)]
    print("| clip | frames | stock ms/frame | shared ms/frame | speed-up | scores identical | cuts identical |")
    print("|---|---|---|---|---|---|---|")
    differ = 0
    for path in paths:
        info = probe(path)
        stock = [AdaptiveDetector(min_scene_len=5, weights=w) for w in weights]
        change = FrameChange(edges=True)
        shared = [_shared_adaptive_detector(change, min_scene_len=5, weights=w) for w in weights]
        t_stock = t_shared = 0.0
        n = mismatches = 0
        cuts_stock, cuts_shared = [], []
        for i, _frame, proxy in iter_proxy(path, proxy_size(info.width, info.height)):
            tc = FrameTimecode(i, fps=float(info.fps))
            t = time.perf_counter()
            for k, d in enumerate(stock):
                cuts_stock += [(k, c.frame_num) for c in d.process_frame(tc, proxy.bgr)]
            t2 = time.perf_counter()
            change.push(proxy.bgr)
            for k, d in enumerate(shared):
                cuts_shared += [(k, c.frame_num) for c in d.process_frame(tc, proxy.bgr)]
            t_stock, t_shared = t_stock + t2 - t, t_shared + time.perf_counter() - t2
            n += 1
            mismatches += sum(a._frame_score != b._frame_score for a, b in zip(stock, shared))
        differ += mismatches + (cuts_stock != cuts_shared)
        print(f"| {Path(path).name} | {n} | {t_stock / n * 1e3:.3f} | {t_shared / n * 1e3:.3f} | "
              f"{t_stock / t_shared:.1f}x | {'yes' if not mismatches else f'no ({mismatches})'} | "
              f"{'yes' if cuts_stock == cuts_shared else 'no'} |", flush=True)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
