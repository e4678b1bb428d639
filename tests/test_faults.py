"""Fault injection: kill -9 at random points, Ctrl-C, full and read-only disks, missing stores, truncated and tampered
checkpoints and records, stale, copied and re-keyed records. Each test asserts that nothing is lost and nothing
silently wrong: a record is either absent or exactly what an uninterrupted run stores, and every refusal names the
file or parameter at fault.

Runs at the ``ci`` preset on temporary stores (numerosity, one VAE, one seed). Marker ``faults`` (``.ci/run`` runs
them as their own step); also ``slow``, so the README's quick command skips them. Small disks are real tmpfs mounts
where this process may mount (root), else an injected ENOSPC / a read-only folder by permissions.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch

from probe_utils import cli
from probe_utils import experiments as ex
from probe_utils.params import ParameterError
from probe_utils.store import CorruptRecord, MisplacedRecord, Store, stale_reason
from probe_utils.train import CorruptCheckpoint, TrainConfig, load_checkpoint, train

pytestmark = [pytest.mark.faults, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
RUN = dict(models="vae", values=3, preset="ci", progress=False)
#: the parts of a record that a run computes (provenance holds times and dates, which differ between runs)
COMPUTED = ("distribution", "invalid_share", "n_samples", "probes", "losses", "readings", "sample_values",
            "sample_grid_png")


def computed(rec: dict) -> dict:
    return {"steps": rec["provenance"]["steps"], "key": rec["key"], **{k: rec["result"].get(k) for k in COMPUTED}}


def key_of(seed: int = 0) -> str:
    plan = ex.check_parameters("numerosity", models="vae", values=3, seeds=[seed], preset="ci", device="cpu")
    from probe_utils.store import record_key

    return record_key("numerosity", "vae", "ci", seed, 3, ex._run_params(plan, "vae"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The record of an uninterrupted run (seed 0), made in this process."""
    root = tmp_path_factory.mktemp("reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (rec,) = ex.run("numerosity", seeds=[0], store=root / "store", runs_dir=root / "runs", **RUN)
    finally:
        torch.set_num_threads(threads)
    assert rec["provenance"]["resumed_from"] is None
    return rec


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PROBE_UTILS_PROGRESS": "0"}
    env.pop("PROBE_UTILS_STORED_ONLY", None)
    return env


# ---------------------------------------------------------------------------------------------------------------
# kill -9 at random points

VICTIM = textwrap.dedent("""
    import os, signal, sys
    store, runs, site, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    import torch
    torch.set_num_threads(1)
    from probe_utils import experiments, store as st, train as tr
    from probe_utils.features import dots

    hits = [0]
    def hit(name):
        if name == site:
            hits[0] += 1
            if hits[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)

    batch = tr.ImagePool.batch
    tr.ImagePool.batch = lambda self, *a, **k: (hit("step"), batch(self, *a, **k))[1]
    replace = os.replace
    def replacing(src, dst):
        if str(src).endswith(".pt.tmp"):
            hit("checkpoint written, not renamed")
        if ".tmp-" in str(src):
            hit("record written, not renamed")
        replace(src, dst)
        if str(dst).endswith(".pt"):
            hit("checkpoint renamed")
    os.replace = replacing
    count = dots.count
    dots.count = lambda *a, **k: (hit("measuring"), count(*a, **k))[1]
    put = st.Store.put
    st.Store.put = lambda self, rec: (put(self, rec), hit("record stored"))[0]
    print("READY", flush=True)
    (rec,) = experiments.run("numerosity", models="vae", values=3, seeds=[0], preset="ci", store=store,
                             runs_dir=runs, progress=False)
    print("DONE", rec["key"], flush=True)
""")


def kill_schedule(rng: random.Random) -> list[tuple[str, float]]:
    """Thirteen kill points along one run (ci: 40 iterations, checkpoints at 20 and 40, probes at 20 and 40), in
    the order the run gets there; "time": an outside kill -9 after a random delay."""
    return [
        ("time", rng.uniform(0.2, 3.0)),                     # anywhere: imports, rendering, training
        ("step", rng.randint(1, 19)),                        # before the first checkpoint
        ("checkpoint written, not renamed", 1),              # leaves <key>.pt.tmp, no checkpoint
        ("step", rng.randint(1, 19)),                        # again from scratch
        ("checkpoint renamed", 1),                           # the checkpoint at 20 in place
        ("step", rng.randint(1, 19)),                        # resumed from 20
        ("measuring", rng.randint(1, 2)),                    # the probe at 40
        ("checkpoint written, not renamed", 1),              # the checkpoint at 40 half made
        ("checkpoint renamed", 1),                           # the final checkpoint in place
        ("measuring", rng.randint(1, 2)),                    # the final samples
        ("record written, not renamed", 1),                  # leaves a .tmp- file in the store
        ("time", rng.uniform(0.2, 2.0)),                     # anywhere
        ("record stored", 1),                                # the record in place, the process dies before return
    ]


def test_kill9_at_random_points(tmp_path, reference):
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    store_dir, runs = tmp_path / "missing" / "store", tmp_path / "runs"  # the store does not exist yet
    store = Store(store_dir)
    kills = 0
    for i, (site, n) in enumerate(kill_schedule(rng)):
        where = f"(FAULT_SEED={seed}, kill at {site!r} {n})"
        arg = "0" if site == "time" else str(int(n))
        proc = subprocess.Popen([sys.executable, "-c", VICTIM, str(store_dir), str(runs), site, arg], env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if site == "time":
            assert proc.stdout.readline().strip() == "READY"
            time.sleep(n)
            proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode in (-signal.SIGKILL, 0), f"{where}: rc {proc.returncode}\n{err[-3000:]}"
        kills += proc.returncode == -signal.SIGKILL
        # after every kill: the store holds nothing or exactly the uninterrupted run's record, never a corrupt file
        recs = list(store.records())
        assert len(recs) <= 1 and all(computed(r) == computed(reference) for r in recs), where
        ckpt = runs / f"{key_of()}.pt"
        if ckpt.exists():
            state = load_checkpoint(ckpt)  # whole, never half-written
            assert state["result"]["steps"] in (20, 40), where
        if i == 0:  # the first kill lands at a random time, maybe after a checkpoint or even the record on a fast
            # machine: the rest of the schedule (which counts on a run from scratch) starts from scratch whatever it
            # reached
            shutil.rmtree(runs, ignore_errors=True)
            shutil.rmtree(store_dir, ignore_errors=True)
    assert kills >= 10, f"only {kills} kills took effect (FAULT_SEED={seed})"
    done = subprocess.run([sys.executable, "-c", VICTIM, str(store_dir), str(runs), "none", "0"], env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "DONE" in done.stdout, done.stderr[-3000:]
    (rec,) = store.records()
    assert computed(rec) == computed(reference), f"FAULT_SEED={seed}"
    assert not list(store_dir.rglob(".tmp-*")) and not list(runs.glob("*.pt.tmp")), f"FAULT_SEED={seed}"


# ---------------------------------------------------------------------------------------------------------------
# resume equals an uninterrupted run, history included


class Interrupt(Exception):
    pass


def test_resumed_history_equals_a_straight_run(tmp_path):
    """Probes draw samples from their own generator, whose state the checkpoint keeps; a loss record that spans the
    checkpoint averages the same iterations (checkpoint every 10, losses every 4)."""
    from probe_utils.models import build
    from probe_utils.render import dots
    from probe_utils.train import ImagePool

    x, _ = dots.render(count=2, n=64, seed=1, size=32)
    pool = ImagePool(x, torch.device("cpu"))
    cfg = TrainConfig(steps=20, batch_size=8, checkpoint_every=10, log_every=4, probe_every=5, probe_samples=16)

    def probe(images):  # sensitive to every sample: each one's share of the total brightness
        v = images.double().mean(dim=(1, 2, 3)).numpy()
        return v / v.sum()

    def model():
        torch.manual_seed(0)
        return build("vae", 32, 4)

    straight = train(model(), pool, cfg, seed=5, probe=probe, progress=False)
    calls = [0]

    def dying(images):
        calls[0] += 1
        if calls[0] == 7:  # the probe at 15, after the checkpoint at 10
            raise Interrupt
        return probe(images)

    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        train(model(), pool, cfg, seed=5, probe=dying, checkpoint=ckpt, progress=False)
    torch.manual_seed(99)
    resumed = train(model(), pool, cfg, seed=5, probe=probe, checkpoint=ckpt, progress=False)
    assert resumed.resumed_from == 10
    assert resumed.probes == straight.probes
    assert resumed.losses == straight.losses


# ---------------------------------------------------------------------------------------------------------------
# Ctrl-C


SLOW_STEPS = textwrap.dedent("""
    import signal, sys, time
    from probe_utils import cli, train as tr
    # Ctrl-C as in a terminal: a test run started in the background (`cmd &`, nohup) hands its children SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    batch = tr.ImagePool.batch
    tr.ImagePool.batch = lambda self, *a, **k: (time.sleep(0.05), batch(self, *a, **k))[1]
    sys.exit(cli.main(sys.argv[1:]))
""")


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path, reference):
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "probe_utils", "run", "numerosity", "--models", "vae", "--values", "3", "--seeds",
           "[0]", "--store", str(store), "--quiet", "--threads", "1"]
    # the same command, with every training step 50 ms slower: the 20 steps after the first checkpoint leave Ctrl-C
    # a window of a second however fast the machine (on a fast one the run used to finish first: the test skipped)
    slowed = [sys.executable, "-c", SLOW_STEPS, *cmd[3:]]
    proc = subprocess.Popen(slowed, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "store-runs" / f"{key_of()}.pt"
    deadline = time.time() + 600
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode != 0, "the run finished before Ctrl-C reached it, slowed steps notwithstanding"
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert "interrupted" in err and "again to resume" in err
    assert not list(store.rglob("*.json")) and not list(ckpt.parent.glob("*.tmp"))
    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    (rec,) = Store(store).records()
    assert rec["provenance"]["resumed_from"] in (20, 40) and computed(rec) == computed(reference)


# ---------------------------------------------------------------------------------------------------------------
# full, read-only and missing stores


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` at ``path`` (None where this process may not mount)."""
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        yield None
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_full_disk_while_checkpointing(tmp_path, reference, capsys, monkeypatch):
    """The checkpoint cannot be written: a one-line error names it, no .pt.tmp is left, nothing is stored; once
    there is room the same command makes the run."""
    monkeypatch.delenv("PROBE_UTILS_STORED_ONLY", raising=False)
    argv = ["run", "numerosity", "--models", "vae", "--values", "3", "--seeds", "[0]", "--quiet", "--threads", "1"]
    with tmpfs(tmp_path / "disk", "1m") as disk:  # a record fits, a checkpoint (about 4 MB) does not
        if disk is None:  # inject ENOSPC into the checkpoint write after a partial file
            import builtins

            import probe_utils.train as train_module

            disk = tmp_path / "disk"

            def full(file, mode="r", *a, **k):
                if str(file).endswith(".pt.tmp"):
                    Path(file).write_bytes(b"partial")
                    raise OSError(errno.ENOSPC, "No space left on device")
                return builtins.open(file, mode, *a, **k)

            monkeypatch.setattr(train_module, "open", full, raising=False)
        store = disk / "store"
        runs = disk / "store-runs"
        rc = cli.main(argv + ["--store", str(store)])
        err = capsys.readouterr().err
        assert rc == 1 and err.startswith("error: ") and "could not write checkpoint" in err and "Traceback" not in err, err
        assert str(runs / f"{key_of()}.pt") in err and "run again" in err
        assert not list(runs.glob("*.tmp")) and not list(runs.glob("*.pt")) and not list(store.rglob("*.json"))
        monkeypatch.undo()
        monkeypatch.delenv("PROBE_UTILS_STORED_ONLY", raising=False)
        if disk.is_mount():
            subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        assert cli.main(argv + ["--store", str(store)]) == 0
        (rec,) = Store(store).records()
        assert computed(rec) == computed(reference)


def test_full_disk_while_storing_a_record(tmp_path, reference, monkeypatch):
    store = Store(tmp_path / "store")
    real_dump = json.dump

    def full(obj, f, *a, **k):
        f.write("{")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", full)
    with pytest.raises(OSError, match="could not write record .*seed0-") as e:
        store.put(reference)
    assert e.value.errno == errno.ENOSPC
    monkeypatch.setattr(json, "dump", real_dump)
    assert not [p for p in store.root.rglob("*") if p.is_file()]
    store.put(reference)
    assert computed(next(store.records())) == computed(reference)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` made read-only: a remounted tmpfs, or permissions where they bind (not root); None if neither."""
    if path.is_mount():
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        try:
            yield path
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(path)], check=True)
    elif os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")] if p.is_dir()}
        for p in modes:
            p.chmod(0o555)
        try:
            yield path
        finally:
            for p, m in modes.items():
                p.chmod(m)
    else:
        yield None


def test_read_only_store_is_read_and_never_trained_into(tmp_path, reference, monkeypatch):
    monkeypatch.delenv("PROBE_UTILS_STORED_ONLY", raising=False)
    with tmpfs(tmp_path / "ro", "8m") as mount:
        root = (mount or tmp_path / "ro") / "store"
        Store(root).put(reference)
        with read_only(root if mount is None else mount) as ro:
            if ro is None:
                pytest.skip("cannot make a read-only folder here (root without mount)")
            before = sorted(p for p in tmp_path.rglob("*"))
            (rec,) = ex.run("numerosity", seeds=[0], store=root, **RUN)  # stored: read, nothing trained
            assert computed(rec) == computed(reference)
            with pytest.raises(ParameterError, match="'store' must be a writable folder"):
                ex.run("numerosity", seeds=[1], store=root, **RUN)  # missing: refused before any training
            assert sorted(p for p in tmp_path.rglob("*")) == before  # no runs folder, no temporary file


def test_missing_store_reads_as_empty_and_odd_stores_are_refused(tmp_path):
    from probe_utils import findings

    missing = Store(tmp_path / "nowhere" / "store")
    assert list(missing.records()) == [] and missing.get("numerosity", "vae", "ci", 0, 3, {}) is None
    findings.scorecard("ci", store=missing)  # nothing to score, no error
    assert not (tmp_path / "nowhere").exists()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for bad in (a_file, a_file / "store", Path("/dev/null/x")):
        with pytest.raises(ParameterError, match="'store'"):
            ex.run("numerosity", seeds=[0], store=bad, **RUN)
    with pytest.raises(ParameterError, match="'store'"):
        Store("")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ---------------------------------------------------------------------------------------------------------------
# truncated and tampered checkpoints


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A ci checkpoint at iteration 20 of seed 0 (the run stopped there)."""
    root = tmp_path_factory.mktemp("ckpt")
    calls = [0]
    real = ex.EXPERIMENTS["numerosity"].distribution

    class Stop(Exception):
        pass

    def stop_after_first_probe(values):  # two calls per probe (its halves); the checkpoint follows the probe at 20
        calls[0] += 1
        if calls[0] > 2:
            raise Stop
        return real(values)

    import dataclasses

    exp = dataclasses.replace(ex.EXPERIMENTS["numerosity"])
    object.__setattr__(exp, "distribution", stop_after_first_probe)
    saved = ex.EXPERIMENTS["numerosity"]
    ex.EXPERIMENTS["numerosity"] = exp
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the reference: module fixtures run before conftest's one-thread fixture
    try:
        with pytest.raises(Stop):
            ex.run("numerosity", seeds=[0], store=root / "store", runs_dir=root / "runs", **RUN)
    finally:
        ex.EXPERIMENTS["numerosity"] = saved
        torch.set_num_threads(threads)
    ckpt = root / "runs" / f"{key_of()}.pt"
    assert load_checkpoint(ckpt)["result"]["steps"] == 20
    return ckpt


def _run_with_checkpoint(tmp_path: Path, data: bytes, capsys, name: str | None = None) -> tuple[int, str, Path]:
    runs = tmp_path / "store-runs"
    runs.mkdir(exist_ok=True)
    ckpt = runs / (name or f"{key_of()}.pt")
    ckpt.write_bytes(data)
    rc = cli.main(["run", "numerosity", "--models", "vae", "--values", "3", "--seeds", "[0]", "--quiet",
                   "--threads", "1", "--store", str(tmp_path / "store")])
    return rc, capsys.readouterr().err, ckpt


@pytest.mark.parametrize("damage", ["truncated", "one byte changed", "empty"])
def test_damaged_checkpoint_names_the_file_to_delete(tmp_path, checkpoint, capsys, damage, monkeypatch):
    monkeypatch.delenv("PROBE_UTILS_STORED_ONLY", raising=False)
    data = bytearray(checkpoint.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "one byte changed":
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray()
    rc, err, ckpt = _run_with_checkpoint(tmp_path, bytes(data), capsys)
    assert rc == 1 and err.startswith(f"error: checkpoint {ckpt}") and "delete it" in err, err
    assert "Traceback" not in err and not list((tmp_path / "store").rglob("*.json"))


def test_checkpoint_of_another_run_is_refused(tmp_path, checkpoint, capsys, monkeypatch):
    """Another run's (valid) checkpoint copied under this run's name: refused, not resumed from."""
    monkeypatch.delenv("PROBE_UTILS_STORED_ONLY", raising=False)
    state = load_checkpoint(checkpoint)
    state["identity"]["seed"] = 1  # as if made by seed 1
    from probe_utils.train import save_checkpoint

    other = tmp_path / "other.pt"
    save_checkpoint(state, other)
    rc, err, ckpt = _run_with_checkpoint(tmp_path, other.read_bytes(), capsys)
    assert rc == 1 and "belongs to another run" in err and str(ckpt) in err, err
    # seed 0's checkpoint copied under another run's file name (same seed and model): refused too
    from probe_utils.models import build
    from probe_utils.render import dots
    from probe_utils.train import ImagePool

    copy = tmp_path / "renamed" / f"{key_of(1)}.pt"
    copy.parent.mkdir()
    copy.write_bytes(checkpoint.read_bytes())
    x, _ = dots.render(count=3, n=32, seed=0, size=32)
    with pytest.raises(CorruptCheckpoint, match="belongs to another run"):
        train(build("vae", 32, 8), ImagePool(x, torch.device("cpu")), TrainConfig(steps=40, batch_size=32),
              seed=0, checkpoint=copy, progress=False)


def test_a_good_checkpoint_resumes_to_the_straight_result(tmp_path, checkpoint, reference, monkeypatch):
    monkeypatch.delenv("PROBE_UTILS_STORED_ONLY", raising=False)
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / checkpoint.name).write_bytes(checkpoint.read_bytes())
    (rec,) = ex.run("numerosity", seeds=[0], store=tmp_path / "store", runs_dir=runs, **RUN)
    assert rec["provenance"]["resumed_from"] == 20 and computed(rec) == computed(reference)


# ---------------------------------------------------------------------------------------------------------------
# truncated, binary, tampered, re-sealed, copied, re-keyed, stale and duplicated records


def _reseal(rec: dict) -> dict:
    """What someone who knows the format could write: fields changed, key and checksum recomputed."""
    from probe_utils.store import _checksum, record_key

    rec = json.loads(json.dumps(rec))
    rec["key"] = record_key(rec["experiment"], rec["model"], rec["preset"], rec["seed"], rec["value"],
                            rec["params"], rec["results_version"])
    rec["sha256"] = _checksum(rec)
    return rec


@pytest.fixture
def stored(tmp_path, reference) -> tuple[Store, Path]:
    store = Store(tmp_path / "store")
    return store, store.put(reference)


@pytest.mark.parametrize("damage", ["truncated", "binary", "one value changed", "empty"])
def test_damaged_record_is_refused_with_its_path(stored, damage, capsys, monkeypatch):
    store, path = stored
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif damage == "one value changed":
        rec = json.loads(text)
        rec["result"]["n_samples"] += 1
        path.write_text(json.dumps(rec))
    else:
        path.write_text("")
    with pytest.raises(CorruptRecord, match=str(path)):
        store.get("numerosity", "vae", "ci", 0, 3, json.loads(text)["params"])
    with pytest.raises(CorruptRecord, match=str(path)):
        list(store.records())
    monkeypatch.delenv("PROBE_UTILS_STORED_ONLY", raising=False)
    rc = cli.main(["run", "numerosity", "--models", "vae", "--values", "3", "--seeds", "[0]", "--quiet",
                   "--store", str(store.root)])
    err = capsys.readouterr().err
    assert rc == 1 and str(path) in err and "Traceback" not in err, err


def test_resealed_record_with_a_bad_result_is_refused(stored):
    store, path = stored
    rec = json.loads(path.read_text())
    rec["result"]["distribution"] = "oops"
    path.write_text(json.dumps(_reseal(rec)))
    with pytest.raises(CorruptRecord, match="'result.distribution'"):
        store.read(path)
    from probe_utils import findings

    with pytest.raises(CorruptRecord):
        findings.scorecard("ci", store=store)


def test_record_copied_to_another_seed_is_never_returned(stored):
    store, path = stored
    rec = json.loads(path.read_text())
    params = rec["params"]
    seed1 = store.path_for("numerosity", "vae", "ci", 1, 3, key_of(1))
    seed1.write_text(path.read_text())  # seed 0's record under seed 1's name
    with pytest.raises(MisplacedRecord, match="seed 0"):
        store.get("numerosity", "vae", "ci", 1, 3, params)
    with pytest.warns(UserWarning, match="belongs at"):
        assert [r["seed"] for r in store.records()] == [0]


def test_rekeyed_record_with_other_settings_is_never_returned(stored):
    store, path = stored
    rec = json.loads(path.read_text())
    rec["params"] = {**rec["params"], "steps": 10}
    path.write_text(json.dumps(_reseal(rec)))  # sound, but for 10 iterations, under the 40-iteration name
    with pytest.raises(MisplacedRecord):
        store.get("numerosity", "vae", "ci", 0, 3, json.loads(json.dumps(ex._run_params(
            ex.check_parameters("numerosity", models="vae", values=3, seeds=1, preset="ci", device="cpu"), "vae"))))
    with pytest.warns(UserWarning):
        assert list(store.records()) == []


def test_stale_and_duplicated_records_are_listed_never_used(stored, reference):
    """A record of an older results version or of older preset settings, and a copy made by a file manager, sit
    beside the current one: records() (which the scorecard reads) yields the current one once."""
    store, path = stored
    old_version = _reseal({**json.loads(path.read_text()), "results_version": reference["results_version"] - 1})
    store.put(old_version)
    old_settings = json.loads(path.read_text())
    old_settings["params"] = {**old_settings["params"], "steps": 30}
    store.put(_reseal(old_settings))
    copy = path.with_name(path.stem + " (copy).json")
    copy.write_text(path.read_text())
    with pytest.warns(UserWarning, match=r"\(copy\)"):
        current = list(store.records("numerosity", "ci"))
    assert [computed(r) for r in current] == [computed(reference)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stale = list(store.records("numerosity", "ci", stale=True))
    reasons = sorted(r["stale_reason"].split(" ")[0] for r in stale)
    assert reasons == ["results", "settings"], [r["stale_reason"] for r in stale]
    assert stale_reason(reference) is None
    scan = store.scan()
    assert len(scan["current"]) == 1 and len(scan["stale"]) == 2 and [p for p, _ in scan["misplaced"]] == [copy]


def test_writes_outside_the_store_are_refused(tmp_path, reference):
    store = Store(tmp_path / "store")
    for field, value in (("experiment", "../../escape"), ("model", ".."), ("preset", "ci/../../x"),
                         ("value", "../3")):
        with pytest.raises(CorruptRecord, match=f"'{field}'"):
            store.put({**reference, field: value})
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "numerosity").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CorruptRecord, match="outside the store"):
        store.put(reference)
    assert not list(tmp_path.rglob("*.json"))


def test_leftover_temporary_files_of_dead_writers_are_cleaned(stored, reference):
    store, path = stored
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    host = "".join(c if c.isalnum() or c in "_." else "_" for c in socket.gethostname())[:40]
    left = path.parent / f".tmp-{host}-{dead.stdout.strip()}-abc.json"
    left.write_text("{")
    mine = path.parent / f".tmp-{host}-{os.getpid()}-abc.json"  # a live writer's: kept
    mine.write_text("{")
    store.put(reference)
    assert not left.exists() and mine.exists()


# ---------------------------------------------------------------------------------------------------------------
# the book: a failed chapter never replaces its notebook


@pytest.mark.book
def test_failed_chapter_execution_leaves_the_notebook(tmp_path):
    pytest.importorskip("papermill")
    import nbformat
    from papermill.exceptions import PapermillExecutionError

    src = tmp_path / "99_fake.py"
    src.write_text("# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n#     language: python\n"
                   "#     name: python3\n# ---\n\n"
                   '# %% tags=["parameters"]\nx = 1\n\n# %%\nassert x == 1, "x must be 1"\nprint("ran with", x)\n')
    nb = src.with_suffix(".ipynb")
    import jupytext

    jupytext.write(jupytext.read(src), nb)  # the committed notebook
    committed = nb.read_bytes()
    work = REPO / "_build" / "executing"
    before = set(work.glob("*")) if work.exists() else set()
    with pytest.raises(PapermillExecutionError) as e:
        cli._execute_chapter(src, {"x": 2})
    assert nb.read_bytes() == committed and set(work.glob("*")) == before
    line = cli._chapter_failure(nb, e.value)
    assert "AssertionError: x must be 1" in line and "left as it was" in line
    cli._execute_chapter(src, {"x": 1})
    done = nbformat.read(nb, as_version=4)
    assert "ran with 1" in json.dumps(done.cells[-1].outputs)
    assert done.metadata.papermill.output_path == str(nb) and set(work.glob("*")) == before
