"""The command line every atheris harness here shares: libFuzzer flags pass through; with no corpus folder
given, the harness's seeds are written to a fresh one in its work folder and the run starts from them."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import atheris


def fuzz_main(argv: list[str], test_one_input: Callable[[bytes], None], seeds: Callable[[], list[bytes]],
              work: Path) -> None:
    argv = list(argv)
    if not any(not a.startswith("-") for a in argv[1:]):  # no corpus folder given: start from the seeds
        corpus = work / "corpus"
        corpus.mkdir()
        for i, seed in enumerate(seeds()):
            (corpus / f"seed{i}").write_bytes(seed)
        argv.append(str(corpus))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
