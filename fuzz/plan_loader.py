#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris/libFuzzer) of the plan loader: schemas.load(EncodePlan) + its npz +
validate_plan_arrays, i.e. everything `encode --plan` trusts.

Each input is either raw bytes for plan.json (first byte even) or a recipe of mutations applied to a valid
plan (JSON edits, or bytes of the npz). The only acceptable failure is SchemaError, the one-line error the CLI
prints; anything else (KeyError, RecursionError, MemoryError, numpy errors...) is a crash libFuzzer reports.

    python fuzz/plan_loader.py -atheris_runs=10000          # the documented long run
    python fuzz/plan_loader.py -atheris_runs=500            # what CI runs (tests/test_fuzz.py)
    python fuzz/plan_loader.py my_corpus/ -atheris_runs=100000   # keep the interesting inputs in my_corpus/
    python fuzz/plan_loader.py --random 10000 [SEED]        # blind random recipes (see random_pass)
"""
from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import fuzz_main  # noqa: E402  (fuzz/harness.py, beside this file)

import numpy as np  # noqa: E402  (third-party code is not instrumented: coverage of our own code is the point)
import pydantic  # noqa: E402,F401

with atheris.instrument_imports(include=["codec_assist"]):
    from codec_assist import schemas
    from codec_assist.errors import SchemaError

WORK = Path(tempfile.mkdtemp(prefix="fuzz-plan-"))
PLAN = WORK / "plan.json"
NPZ = WORK / "plan.npz"

GOOD = schemas.EncodePlan(codec="x264", width=64, height=48, frame_count=12, fps=25.0, block_size=16, blocks_x=4,
                          blocks_y=3, max_dqp=6.0, keyframes=[0, 6], shot_starts=[0, 6], min_gop=1, max_gop=250)
GOOD_JSON = json.loads(GOOD.model_dump_json(by_alias=True))
GOOD_ARRAYS = {"qp/frames": np.array([0, 6], np.int64), "qp/offsets": np.zeros((2, 3, 4), np.float32)}
FIELDS = list(GOOD_JSON)
VALUES = [None, True, 0, -1, 1, 2**31, 2**63, -(2**63), 1e308, float("nan"), float("inf"), "", "x264", "x265",
          "codec-assist/plan", [], [0], [0, 5, 3], [-1], [10**9], {}, {"a": 1}, "\udcff"]


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


GOOD_NPZ = _npz(GOOD_ARRAYS)


def _mutated(fdp: atheris.FuzzedDataProvider) -> tuple[bytes, bytes]:
    """A valid plan + npz with a few fuzzer-chosen edits."""
    raw = json.loads(json.dumps(GOOD_JSON))
    arrays = dict(GOOD_ARRAYS)
    npz = None
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        op = fdp.ConsumeIntInRange(0, 6)
        if op == 0:  # a field gets a hostile value
            raw[fdp.PickValueInList(FIELDS)] = fdp.PickValueInList(VALUES)
        elif op == 1:  # a field gets a fuzzer number
            raw[fdp.PickValueInList(FIELDS)] = fdp.ConsumeInt(8) if fdp.ConsumeBool() else fdp.ConsumeFloat()
        elif op == 2:  # a field disappears, or an unknown one appears
            raw.pop(fdp.PickValueInList(FIELDS), None) if fdp.ConsumeBool() else raw.update(
                {fdp.ConsumeUnicodeNoSurrogates(8): 1})
        elif op == 3:  # the qp arrays take a fuzzer shape and values
            shape = tuple(fdp.ConsumeIntInRange(0, 5) for _ in range(fdp.ConsumeIntInRange(0, 4)))
            n = int(np.prod(shape)) if shape else 1
            vals = np.array(fdp.ConsumeFloatListInRange(n, -100.0, 100.0) + [0.0] * n)[:n]
            arrays["qp/offsets"] = vals.reshape(shape).astype(fdp.PickValueInList(["f4", "f8", "i4", "f2"]))
        elif op == 4:
            k = fdp.ConsumeIntInRange(0, 4)
            arrays["qp/frames"] = np.array(fdp.ConsumeIntListInRange(k, -5, 20), fdp.PickValueInList(["i8", "f8"]))
        elif op == 5:  # an array goes missing
            arrays.pop(fdp.PickValueInList(list(GOOD_ARRAYS)), None)
        else:  # the npz bytes themselves are damaged
            data = bytearray(GOOD_NPZ)
            for _ in range(fdp.ConsumeIntInRange(1, 8)):
                data[fdp.ConsumeIntInRange(0, len(data) - 1)] = fdp.ConsumeIntInRange(0, 255)
            npz = bytes(data[: fdp.ConsumeIntInRange(0, len(data))])
    text = json.dumps(raw, allow_nan=True, ensure_ascii=fdp.ConsumeBool())
    return text.encode("utf-8", "surrogateescape"), npz if npz is not None else _npz(arrays)


def load_plan(plan_bytes: bytes, npz_bytes: bytes | None) -> None:
    """What `encode --plan` does with the two files; SchemaError is the only allowed failure."""
    PLAN.write_bytes(plan_bytes)
    if npz_bytes is None:
        NPZ.unlink(missing_ok=True)
    else:
        NPZ.write_bytes(npz_bytes)
    try:
        plan, arrays = schemas.load(schemas.EncodePlan, PLAN, need_arrays=("qp/frames", "qp/offsets"))
        schemas.validate_plan_arrays(plan, arrays, str(PLAN))
    except SchemaError as e:
        assert "\n" not in str(e), "a SchemaError must be one line"


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    if data[0] % 2 == 0:
        load_plan(data[1:], GOOD_NPZ)
    else:
        load_plan(*_mutated(atheris.FuzzedDataProvider(data[1:])))


def seeds() -> list[bytes]:
    """Starting inputs: the valid plan as raw JSON, and mutation recipes of a few lengths."""
    rng = np.random.default_rng(0)
    return [b"\x00" + json.dumps(GOOD_JSON).encode(), b"\x00{}", *(b"\x01" + rng.bytes(n) for n in (16, 64, 256))]


def random_pass(runs: int, seed: int = 0) -> None:
    """Uniformly random recipes, no coverage guidance: libFuzzer's feedback only sees our own Python edges
    (pydantic's validation is native code), so blind sampling of the recipe space complements it. It found the
    multi-line error for a field name holding a newline, which 10 000 guided runs had not."""
    rng = np.random.default_rng(seed)
    for i in range(runs):
        TestOneInput(bytes([1]) + rng.bytes(int(rng.integers(8, 400))))
    print(f"random pass: {runs} recipes, no crash (seed {seed})")


def main() -> None:
    argv = list(sys.argv)
    if len(argv) >= 3 and argv[1] == "--random":
        random_pass(int(argv[2]), int(argv[3]) if len(argv) > 3 else 0)
        return
    fuzz_main(argv, TestOneInput, seeds, WORK)


if __name__ == "__main__":
    main()
