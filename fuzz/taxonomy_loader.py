#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris/libFuzzer) of the taxonomy and preset-table loaders: what `tag --taxonomy`
and `encode --auto-preset --taxonomy/--preset-table` read (tagging.load_taxonomy / load_presets: size and UTF-8
checks, YAML/JSON parsing with the alias refusal, schema validation).

The first byte picks the target (taxonomy or preset table) and the file type (YAML or JSON); the second byte
picks raw bytes or a mutation recipe applied to the shipped file. SchemaError/CodecAssistError (one line) is the
only acceptable failure.

    python fuzz/taxonomy_loader.py -atheris_runs=10000          # the documented long run
    python fuzz/taxonomy_loader.py -atheris_runs=300 -seed=1    # what CI runs (tests/test_fuzz.py)
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import fuzz_main  # noqa: E402  (fuzz/harness.py, beside this file)

import yaml  # noqa: E402  (third-party code is not instrumented: coverage of our own code is the point)
import pydantic  # noqa: E402,F401

with atheris.instrument_imports(include=["codec_assist.tags.tagging"]):
    import codec_assist.tags.tagging as tagging
    from codec_assist.errors import CodecAssistError

WORK = Path(tempfile.mkdtemp(prefix="fuzz-taxonomy-"))
GOOD = {"taxonomy": yaml.safe_load(tagging.DEFAULT_TAXONOMY.read_text()),
        "presets": yaml.safe_load(tagging.DEFAULT_PRESETS.read_text())}
VALUES = [None, True, 0, -1, 1.5, 2**63, float("nan"), float("inf"), "", "x" * 700, "../../etc", "a\nb",
          [], [{}], {}, {"a": 1}, "codec-assist/taxonomy", "codec-assist/presets"]


def _mutated(which: str, fdp: atheris.FuzzedDataProvider) -> object:
    raw = json.loads(json.dumps(GOOD[which]))
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        op = fdp.ConsumeIntInRange(0, 3)
        # a target: the top level, a topic / a preset
        target = raw
        inner = raw.get("topics") if which == "taxonomy" else raw.get("presets")
        inner = list(inner.values()) if isinstance(inner, dict) else inner
        if fdp.ConsumeBool() and isinstance(inner, list) and inner:
            target = inner[fdp.ConsumeIntInRange(0, len(inner) - 1)]
        if not isinstance(target, dict):
            continue
        keys = list(target) or ["x"]
        if op == 0:
            target[fdp.PickValueInList(keys)] = fdp.PickValueInList(VALUES)
        elif op == 1:
            target[fdp.PickValueInList(keys)] = fdp.ConsumeInt(4) if fdp.ConsumeBool() else fdp.ConsumeFloat()
        elif op == 2:
            target.pop(fdp.PickValueInList(keys), None)
        else:
            target[fdp.ConsumeUnicodeNoSurrogates(8)] = fdp.ConsumeUnicodeNoSurrogates(16)
    return raw


def load(which: str, name: str, data: bytes) -> None:
    p = WORK / name
    p.write_bytes(data)
    try:
        if which == "taxonomy":
            tagging.load_taxonomy(p)
        else:
            tagging.load_presets(p, tagging.load_taxonomy())
    except CodecAssistError as e:
        assert "\n" not in str(e), f"a multi-line error: {e!r}"


TAXONOMY = tagging.load_taxonomy()  # the shipped one, for the preset table's cross-check


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    which = "taxonomy" if data[0] & 1 else "presets"
    name = which + (".json" if data[0] & 2 else ".yaml")
    if data[1] & 1:  # raw bytes
        load(which, name, data[2:])
        return
    raw = _mutated(which, atheris.FuzzedDataProvider(data[2:]))
    text = json.dumps(raw, allow_nan=True) if name.endswith(".json") else yaml.safe_dump(raw, allow_unicode=True)
    load(which, name, text.encode("utf-8", "surrogateescape"))


def seeds() -> list[bytes]:
    tax, pre = tagging.DEFAULT_TAXONOMY.read_bytes(), tagging.DEFAULT_PRESETS.read_bytes()
    return [b"\x01\x01" + tax, b"\x00\x01" + pre, b"\x03\x01" + json.dumps(GOOD["taxonomy"]).encode(),
            b"\x01\x00" + bytes(range(64)), b"\x00\x00" + bytes(range(64, 0, -1)), b"\x01\x01a: &a [1]\nb: *a\n"]


def main() -> None:
    fuzz_main(sys.argv, TestOneInput, seeds, WORK)


if __name__ == "__main__":
    main()
