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
import math
import os
import re
import socket
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from probe_utils.params import ParameterError

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


class MisplacedRecord(CorruptRecord):
    """A sound record in a file that its identity does not name (a copy, or a record for other settings)."""


#: what a path component of the store (experiment, preset, model, value) may hold
_PART = re.compile(r"^[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*$")
#: temporary files of :meth:`Store.put`: ``.tmp-<host>-<pid>-<random>.json``
_TMP = re.compile(r"^\.tmp-(?P<host>[^-]*)-(?P<pid>\d+)-")


def _check_part(field: str, value: Any, where: str = "") -> str:
    """``str(value)`` if it can be one folder name of the store (no separators, not '.' or '..')."""
    text = str(value)
    if not _PART.match(text) or len(text) > 200:
        raise CorruptRecord(f"record field {field!r} must be a plain name (letters, digits, '.', '_', '+', '-'; "
                            f"a folder of the store); got {value!r}{where}")
    return text


def _check_number_list(field: str, value: Any, where: str, *, lo: float | None = None) -> list:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              and math.isfinite(v) and (lo is None or v >= lo) for v in value):
        raise CorruptRecord(f"record field {field!r} must be a list of finite numbers"
                            f"{'' if lo is None else f' >= {lo:g}'}; got {str(value)[:80]}{where}")
    return value


def _check_share(field: str, value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise CorruptRecord(f"record field {field!r} must be a share in [0, 1]; got {value!r}{where}")


def _check_distribution(field: str, dist: Any, where: str) -> None:
    """A distribution over bins: non-negative shares that sum to 1 (or all 0: nothing was measurable)."""
    _check_number_list(field, dist, where, lo=0.0)
    total = sum(dist)
    if dist and abs(total - 1.0) > 1e-6 and total != 0.0:
        raise CorruptRecord(f"record field {field!r} must sum to 1 (or 0 when nothing was measurable); sums to "
                            f"{total:g}{where}")


def _check_result(res: dict, where: str) -> None:
    """The schema of a record's ``result``: what the analyses read, typed and in range."""
    if "distribution" not in res:
        raise CorruptRecord(f"record result lacks 'distribution'{where}")
    _check_distribution("result.distribution", res["distribution"], where)
    if "bins" in res and (not isinstance(res["bins"], int) or isinstance(res["bins"], bool)
                          or res["bins"] != len(res["distribution"])):
        raise CorruptRecord(f"record field 'result.bins' must equal the length of its distribution "
                            f"({len(res['distribution'])}); got {res['bins']!r}{where}")
    if "invalid_share" in res:
        _check_share("result.invalid_share", res["invalid_share"], where)
    if "n_samples" in res and (not isinstance(res["n_samples"], int) or isinstance(res["n_samples"], bool)
                               or res["n_samples"] < 0):
        raise CorruptRecord(f"record field 'result.n_samples' must be an integer >= 0; got {res['n_samples']!r}"
                            f"{where}")
    for name in ("feature", "sample_grid_png"):
        if name in res and not isinstance(res[name], str):
            raise CorruptRecord(f"record field 'result.{name}' must be text; got {type(res[name]).__name__}{where}")
    for name in ("probes", "losses"):
        items = res.get(name, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("step"), int)
                                                  for i in items):
            raise CorruptRecord(f"record field 'result.{name}' must be a list of {{'step': int, ...}} entries"
                                f"{where}")
    for i, p in enumerate(res.get("probes", [])):
        if "dist" in p:
            _check_distribution(f"result.probes[{i}].dist", p["dist"], where)
    readings = res.get("readings", {})
    if not isinstance(readings, dict):
        raise CorruptRecord(f"record field 'result.readings' must be a mapping of name to reading{where}")
    for name, r in readings.items():
        if not isinstance(r, dict) or "distribution" not in r:
            raise CorruptRecord(f"record field 'result.readings.{name}' must hold a distribution{where}")
        _check_distribution(f"result.readings.{name}.distribution", r["distribution"], where)
        if "invalid_share" in r:
            _check_share(f"result.readings.{name}.invalid_share", r["invalid_share"], where)
    for name in ("sample_values", "sample_status"):
        if name in res and not isinstance(res[name], list):
            raise CorruptRecord(f"record field 'result.{name}' must be a list{where}")
    if "train_support" in res and not (isinstance(res["train_support"], list) and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in res["train_support"])):
        raise CorruptRecord(f"record field 'result.train_support' must be a list of combination ids (integers "
                            f">= 0){where}")


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


def commit_of(root: Path) -> str | None:
    """``root``'s HEAD commit, with '+dirty' when its ``probe_utils/`` differs from it; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "probe_utils"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


#: the commit of the code this process loaded, taken when it imported probe_utils: a sweep's workers keep running
#: the code they started with while the work tree moves on, and their records must name that code
_LOADED_COMMIT = commit_of(Path(__file__).resolve().parent.parent)


def git_commit() -> str | None:
    """The commit of the code this process runs (a record's ``git_commit``): the repository's HEAD when this
    module was imported, with '+dirty' when ``probe_utils/`` differed from it then; None outside git."""
    return _LOADED_COMMIT


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
    for name in ("experiment", "preset", "model", "value"):
        _check_part(name, rec[name], where)
    if rec["seed"] < 0:
        raise CorruptRecord(f"record field 'seed' must be >= 0; got {rec['seed']}{where}")
    _check_result(rec["result"], where)
    if rec["sha256"] != _checksum(rec):
        raise CorruptRecord(f"record checksum does not match its content{where}")
    key = record_key(rec["experiment"], rec["model"], rec["preset"], rec["seed"], rec["value"], rec["params"],
                     rec["results_version"])
    if key != rec["key"]:
        raise CorruptRecord(f"record key does not match its identifying fields{where}")
    return rec


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _settings_expected(rec: dict, cache: dict) -> dict | None:
    """The params :func:`probe_utils.experiments.run` uses today for this record's experiment, model and preset
    (keeping its width and number of training images, which a run may choose); None when this code base has no such
    experiment (then no settings check applies). Raises ParameterError when today's code could not make it."""
    from probe_utils import experiments as ex

    if rec["experiment"] not in ex.EXPERIMENTS:
        return None
    width, pool = rec["params"].get("width"), rec["params"].get("pool_size")
    ident = (rec["experiment"], rec["model"], rec["preset"], width, pool)
    if ident not in cache:
        try:
            plan = ex.check_parameters(rec["experiment"], models=[rec["model"]], values=[rec["value"]], seeds=[0],
                                       preset=rec["preset"], device="cpu", width=width, pool_size=pool)
            cache[ident] = json.loads(_canonical(ex._run_params(plan, rec["model"])))
        except ParameterError as e:
            cache[ident] = e
    if isinstance(cache[ident], ParameterError):
        raise cache[ident]
    return cache[ident]


def stale_reason(rec: dict, cache: dict | None = None) -> str | None:
    """Why a sound record is not current (an older :data:`RESULTS_VERSION`, or settings other than those its preset
    gives today), or None when it is current: exactly the records that :func:`probe_utils.experiments.run` would
    reuse."""
    if rec["results_version"] != RESULTS_VERSION:
        return f"results version {rec['results_version']} (current: {RESULTS_VERSION})"
    try:
        expected = _settings_expected(rec, {} if cache is None else cache)
    except ParameterError as e:
        return f"settings today's code cannot make ({e})"
    if expected is None or expected == rec["params"]:
        return None
    diff = sorted(k for k in expected.keys() | rec["params"].keys() if expected.get(k) != rec["params"].get(k))
    return (f"settings of an older {rec['preset']!r} preset: " +
            ", ".join(f"{k}={rec['params'].get(k)!r} (now {expected.get(k)!r})" for k in diff[:4]) +
            (", ..." if len(diff) > 4 else ""))


#: Digests of record files this process has validated: validation is a function of a file's bytes alone, so a file
#: read again unchanged (sweep planning reads the store many times) is parsed but not checked again.
_VALIDATED: set[bytes] = set()


class Store:
    """A folder of records. ``Store()`` is the book's store (``book/results``).

    Every read checks a record's checksum, key, schema and that its file is the one its identity names (a copy
    elsewhere, or a record for other settings under this name, is never returned); :meth:`get` also checks that the
    record is the one asked for. Every write refuses a path outside the root."""

    def __init__(self, root: str | Path | None = None) -> None:
        if root is not None and (not isinstance(root, (str, os.PathLike)) or not str(root).strip()
                                 or "\x00" in str(root)):
            raise ParameterError(f"parameter 'store' must be a folder path (or None: the book's store); got {root!r}")
        self.root = Path(root) if root is not None else default_root()
        self._resolved_root: Path | None = None

    @property
    def runs_dir(self) -> Path:
        """Where runs keep their checkpoints for this store by default: ``runs/`` beside the book's ``book/``, else
        ``<store>-runs``."""
        if self.root.parent.name == "book":
            return self.root.parent.parent / "runs"
        return self.root.with_name(self.root.name + "-runs")

    def path_for(self, experiment: str, model: str, preset: str, seed: int, value: Any, key: str) -> Path:
        """Where the record of this identity lives; CorruptRecord for a name that would leave the root."""
        parts = [_check_part(n, v) for n, v in (("experiment", experiment), ("preset", preset), ("model", model),
                                                 ("value", value))]
        if not re.fullmatch(r"[0-9a-f]{8,}", str(key)):
            raise CorruptRecord(f"record field 'key' must be a hex digest; got {key!r}")
        path = self.root.joinpath(*parts) / f"seed{int(seed)}-{key[:8]}.json"
        root = self.root.resolve()
        if not path.resolve().is_relative_to(root):  # e.g. a symlinked folder pointing elsewhere
            raise CorruptRecord(f"record path {path} is outside the store {root}")
        return path

    def require_writable(self, name: str = "store") -> None:
        """Raise ParameterError naming ``name`` unless records can be written under the root (created if missing).
        Writes nothing: the probe is an anonymous temporary file in the deepest folder that exists."""
        require_writable_dir(self.root, name)

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
        self._clean_tmp(path.parent)
        host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{host}-{os.getpid()}-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(rec, f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise OSError(e.errno, f"could not write record {path}: {e.strerror or e}") from e
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @staticmethod
    def _clean_tmp(folder: Path) -> None:
        """Remove temporary files that a process of this host left when it died while writing (kill -9)."""
        host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40]
        for tmp in folder.glob(".tmp-*.json"):
            m = _TMP.match(tmp.name)
            if m and m["host"] == host and not _pid_alive(int(m["pid"])):
                tmp.unlink(missing_ok=True)

    def read(self, path: str | Path) -> dict:
        """Read and validate one record file; a file under the root must be the one its identity names. Bytes
        validated before in this process are parsed but not checked again (validation depends on them alone)."""
        path = Path(path)
        try:
            data = path.read_bytes()
            digest = hashlib.blake2b(data, digest_size=20).digest()
            rec = json.loads(data.decode("utf-8"))
        except (OSError, ValueError) as e:  # ValueError: bad JSON or bytes that are not UTF-8
            raise CorruptRecord(f"unreadable record {path}: {e}; move it away or delete it (the run is remade "
                                f"on the next `run`)") from e
        if digest not in _VALIDATED:
            rec = validate(rec, path)
            _VALIDATED.add(digest)
        try:
            if self._resolved_root is None:
                self._resolved_root = self.root.resolve()
            inside = path.resolve().is_relative_to(self._resolved_root)
        except OSError:
            inside = False
        if inside:
            expected = self.path_for(rec["experiment"], rec["model"], rec["preset"], rec["seed"], rec["value"],
                                     rec["key"])
            if expected.resolve() != path.resolve():
                raise MisplacedRecord(f"record {path} belongs at {expected} ({rec['experiment']}, {rec['model']}, "
                                      f"{rec['preset']}, seed {rec['seed']}, value {rec['value']!r}): a copy or a "
                                      f"moved file; move it away or delete it")
        return rec

    def get(self, experiment: str, model: str, preset: str, seed: int, value: Any, params: dict) -> dict | None:
        """The record for exactly these settings, or None. A file at that name holding another run's record raises
        :class:`MisplacedRecord` (it is never returned)."""
        params = json.loads(_canonical(params))
        key = record_key(experiment, model, preset, seed, value, params)
        path = self.path_for(experiment, model, preset, seed, value, key)
        if not path.exists():
            return None
        rec = self.read(path)
        asked = {"experiment": experiment, "model": model, "preset": preset, "seed": int(seed), "value": value,
                 "params": params, "results_version": RESULTS_VERSION, "key": key}
        differ = [k for k, v in asked.items() if _canonical(rec[k]) != _canonical(v)]
        if differ:
            raise MisplacedRecord(f"record {path} is not the one asked for ({', '.join(differ)} differ): move it "
                                  f"away or delete it")
        return rec

    def scan(self, experiment: str | None = None, preset: str | None = None) -> dict[str, list]:
        """Every file of the store (optionally of one experiment and preset), sorted into ``current`` (records),
        ``stale`` (records, see :func:`stale_reason`; each with ``"stale_reason"``), ``misplaced`` and ``corrupt``
        (``(path, reason)`` pairs)."""
        out: dict[str, list] = {"current": [], "stale": [], "misplaced": [], "corrupt": []}
        cache: dict = {}
        for path, rec, err in self._files(experiment, preset):
            if isinstance(err, MisplacedRecord):
                out["misplaced"].append((path, str(err)))
            elif err is not None:
                out["corrupt"].append((path, str(err)))
            else:
                why = stale_reason(rec, cache)
                if why is None:
                    out["current"].append(rec)
                else:
                    out["stale"].append({**rec, "stale_reason": why})
        return out

    def _files(self, experiment: str | None,
               preset: str | None) -> Iterator[tuple[Path, dict | None, Exception | None]]:
        base = self.root
        for name, part in (("experiment", experiment), ("preset", preset if experiment else None)):
            if part:
                try:
                    base = base / _check_part(name, part)
                except CorruptRecord:
                    raise ParameterError(f"parameter {name!r} must be a plain name (letters, digits, '.', '_', "
                                         f"'+', '-'); got {part!r}") from None
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*.json")):
            if path.name.startswith(".tmp-"):
                continue
            try:
                yield path, self.read(path), None
            except CorruptRecord as e:
                yield path, None, e

    def records(self, experiment: str | None = None, preset: str | None = None, stale: bool = False) -> Iterator[dict]:
        """All current records (optionally of one experiment and preset), validated: those that
        :func:`probe_utils.experiments.run` would reuse. With ``stale``, only the sound records that are not current
        (an older :data:`RESULTS_VERSION` or preset settings), each with its ``"stale_reason"``. A record in a file its
        identity does not name (a copy) is skipped with a warning; an unreadable or tampered one raises
        :class:`CorruptRecord`."""
        cache: dict = {}
        for path, rec, err in self._files(experiment, preset):
            if isinstance(err, MisplacedRecord):
                warnings.warn(f"skipped: {err}", stacklevel=2)
                continue
            if err is not None:
                raise err
            why = stale_reason(rec, cache)
            if (why is not None) == stale:
                yield rec if why is None else {**rec, "stale_reason": why}


def require_writable_dir(folder: str | Path, name: str) -> None:
    """Raise ParameterError naming ``name`` unless ``folder`` is (or can be created as) a writable folder. Nothing
    is created: the deepest existing ancestor is probed with an anonymous temporary file."""
    folder = Path(folder)
    probe = folder.absolute()
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ParameterError(f"parameter {name!r} must be a folder that can hold results; {folder} cannot be one, "
                             f"since {probe} is {'a file' if probe.exists() else 'missing'}")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise ParameterError(f"parameter {name!r} must be a writable folder; {folder} cannot be written "
                             f"({e.strerror or e} in {probe})") from None
