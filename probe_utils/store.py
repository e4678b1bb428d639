"""Results store: one JSON record per (experiment, model, preset, seed, parameters, results version).

Records are small (measured feature distributions, loss and probe curves, one small PNG sample grid) and carry
their provenance (device, torch version, iterations, wall time, git commit when known, date). Writes are atomic
(temporary file + rename); every record holds a SHA-256 of its own content, and reading a record whose content, key
or fields do not check out raises :class:`CorruptRecord` instead of returning it.

The default root is the checkout's ``book/results`` (see :func:`default_root`); records made at the ``ci`` preset
are git-ignored there. Layout: ``<root>/<experiment>/<preset>/<model>/<value>/seed<k>-<key8>.json``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

#: Bump when a change to renderers, models, training or measurement changes results: old records stop matching.
#: Version of what a record means. 2: measurements refuse what they cannot measure (dots -1, pie NaN), the dots
#: counter and the pie red rule hold on blurred and faint images, records carry alternative readings. Records of an
#: older version are stale: never used (those of version 1 are kept under book/archive/results-v1/).
RESULTS_VERSION = 2



def default_root() -> Path:
    """The book's store: ``$PROBE_RESULTS`` if set, else ``book/results`` of the checkout that holds the current
    directory or this package, else ``./probe_results`` (e.g. an installed package on Colab)."""
    if os.environ.get("PROBE_RESULTS"):
        return Path(os.environ["PROBE_RESULTS"])
    here = Path.cwd().resolve()
    for base in [here, *here.parents, Path(__file__).resolve().parent.parent]:
        if (base / "book" / "results").is_dir() and (base / "probe_utils").is_dir():
            return base / "book" / "results"
    return here / "probe_results"

REQUIRED = {
    "experiment": str, "model": str, "preset": str, "seed": int, "value": (int, float, str), "params": dict,
    "results_version": int, "key": str, "provenance": dict, "result": dict, "sha256": str,
}
PROVENANCE = {"device": str, "torch": str, "steps": int, "wall_s": (int, float), "created": str,
              "code_version": str}


class CorruptRecord(ValueError):
    """A stored record is unreadable, incomplete, or its checksum or key does not match its content."""


def record_key(experiment: str, model: str, preset: str, seed: int, value: Any, params: dict,
               results_version: int = RESULTS_VERSION) -> str:
    """Stable hash of everything that determines a run's result."""
    ident = {"experiment": experiment, "model": model, "preset": preset, "seed": int(seed), "value": value,
             "params": params, "results_version": results_version}
    return hashlib.sha256(_canonical(ident).encode()).hexdigest()[:16]


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _checksum(rec: dict) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in rec.items() if k != "sha256"}).encode()).hexdigest()


def git_commit() -> str | None:
    """The repository's HEAD commit (with '+dirty' when the work tree differs), or None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "probe_utils"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def image_grid(images: Any, cols: int = 8, pad: int = 2) -> np.ndarray:
    """Tile (n,3,H,W) images in [0,1] (a numpy array or a torch tensor on any device) into one
    (rows*(H+pad)+pad, cols*(W+pad)+pad, 3) array, light-gray gutters."""
    if hasattr(images, "detach"):  # a torch tensor; torch is not imported here
        images = images.detach().float().cpu().numpy()
    x = np.clip(np.asarray(images, np.float32), 0, 1).transpose(0, 2, 3, 1)
    n, h, w, c = x.shape
    rows = max(1, -(-n // cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 0.75, np.float32)
    for i in range(n):
        r, k = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = x[i]
    return out


def png_base64(grid: np.ndarray) -> str:
    """Encode an (H,W,3) float [0,1] or uint8 image as base64 PNG."""
    import matplotlib.image as mpimg

    arr = np.asarray(grid)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    mpimg.imsave(buf, arr, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def png_decode(data: str) -> np.ndarray:
    """Decode :func:`png_base64` back into an (H,W,3) float array."""
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(base64.b64decode(data)), format="png")
    return np.asarray(img)[..., :3]


def validate(rec: Any, path: Path | str | None = None) -> dict:
    """Return ``rec`` if it is a well-formed, untampered record; raise :class:`CorruptRecord` otherwise."""
    where = f" ({path})" if path else ""
    if not isinstance(rec, dict):
        raise CorruptRecord(f"record is not a JSON object{where}")
    for name, typ in REQUIRED.items():
        if name not in rec:
            raise CorruptRecord(f"record lacks field {name!r}{where}")
        if not isinstance(rec[name], typ) or (typ is int and isinstance(rec[name], bool)):
            raise CorruptRecord(f"record field {name!r} has type {type(rec[name]).__name__}{where}")
    for name, typ in PROVENANCE.items():
        if not isinstance(rec["provenance"].get(name), typ):
            raise CorruptRecord(f"record provenance lacks {name!r}{where}")
    if rec["sha256"] != _checksum(rec):
        raise CorruptRecord(f"record checksum does not match its content{where}")
    key = record_key(rec["experiment"], rec["model"], rec["preset"], rec["seed"], rec["value"], rec["params"],
                     rec["results_version"])
    if key != rec["key"]:
        raise CorruptRecord(f"record key does not match its identifying fields{where}")
    return rec


class Store:
    """A folder of records. ``Store()`` is the book's store (``book/results``)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def path_for(self, experiment: str, model: str, preset: str, seed: int, value: Any, key: str) -> Path:
        return self.root / experiment / preset / model / str(value) / f"seed{int(seed)}-{key[:8]}.json"

    def put(self, rec: dict) -> Path:
        """Seal (key + checksum), validate and atomically write a record; return its path."""
        rec = json.loads(_canonical(rec))
        rec.setdefault("results_version", RESULTS_VERSION)
        rec["key"] = record_key(rec["experiment"], rec["model"], rec["preset"], rec["seed"], rec["value"],
                                rec["params"], rec["results_version"])
        rec["sha256"] = ""
        rec["sha256"] = _checksum(rec)
        validate(rec)
        path = self.path_for(rec["experiment"], rec["model"], rec["preset"], rec["seed"], rec["value"], rec["key"])
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(rec, f, indent=1, sort_keys=True)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def read(self, path: str | Path) -> dict:
        """Read and validate one record file."""
        try:
            rec = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CorruptRecord(f"unreadable record {path}: {e}") from e
        return validate(rec, path)

    def get(self, experiment: str, model: str, preset: str, seed: int, value: Any, params: dict) -> dict | None:
        """The record for exactly these settings, or None."""
        params = json.loads(_canonical(params))
        key = record_key(experiment, model, preset, seed, value, params)
        path = self.path_for(experiment, model, preset, seed, value, key)
        return self.read(path) if path.exists() else None

    def records(self, experiment: str | None = None, preset: str | None = None, stale: bool = False) -> Iterator[dict]:
        """All current records (optionally of one experiment and preset), validated; with ``stale``, only those of
        an older :data:`RESULTS_VERSION`."""
        base = self.root
        if experiment:
            base = base / experiment
            if preset:
                base = base / preset
        if not base.exists():
            return
        for path in sorted(base.rglob("*.json")):
            if not path.name.startswith(".tmp-"):
                rec = self.read(path)
                if (rec["results_version"] != RESULTS_VERSION) == stale:
                    yield rec
