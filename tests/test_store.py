import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from probe_utils import experiments as ex, store
from probe_utils.store import RESULTS_VERSION, CorruptRecord, png_base64, png_decode

#: the settings a ci run of numerosity with a VAE has today (records with other settings are stale)
PARAMS = ex._run_params(ex.check_parameters("numerosity", models="vae", values=3, seeds=1, preset="ci",
                                            device="cpu"), "vae")


def make_record(**over):
    rec = {
        "experiment": "numerosity", "model": "vae", "preset": "ci", "seed": 0, "value": 3,
        "params": PARAMS, "results_version": RESULTS_VERSION,
        "provenance": {"device": "cpu", "torch": "2", "steps": 10, "wall_s": 1.5, "created": "now",
                       "code_version": "0.1.0"},
        "result": {"distribution": [0.0, 1.0]},
    }
    rec.update(over)
    return rec


def test_round_trip_and_lookup(tmp_store):
    path = tmp_store.put(make_record())
    got = tmp_store.get("numerosity", "vae", "ci", 0, 3, PARAMS)
    assert got["result"]["distribution"] == [0.0, 1.0]
    assert tmp_store.get("numerosity", "vae", "ci", 0, 3, {**PARAMS, "width": 16}) is None
    assert tmp_store.get("numerosity", "vae", "ci", 1, 3, PARAMS) is None
    assert [r["key"] for r in tmp_store.records("numerosity", "ci")] == [got["key"]]
    assert not list(path.parent.glob(".tmp-*"))


@pytest.mark.parametrize("tamper", [
    lambda r: r["result"].update(distribution=[1.0, 0.0]),   # an edited outcome
    lambda r: r.update(seed=1),                               # a key field changed
    lambda r: r["provenance"].pop("device"),                  # provenance missing
    lambda r: r.pop("params"),                                # a field missing
])
def test_refuses_tampered_records(tmp_store, tamper):
    path = tmp_store.put(make_record())
    assert tmp_store.read(path)["seed"] == 0  # read (and validated) once, as a sweep does, before the edit
    rec = json.loads(path.read_text())
    tamper(rec)
    path.write_text(json.dumps(rec))
    with pytest.raises(CorruptRecord):
        tmp_store.read(path)


def test_refuses_truncated_file(tmp_store):
    path = tmp_store.put(make_record())
    path.write_text(path.read_text()[:50])
    with pytest.raises(CorruptRecord, match="unreadable"):
        list(tmp_store.records())


def test_refuses_to_write_incomplete_records(tmp_store):
    rec = make_record()
    del rec["provenance"]["wall_s"]
    with pytest.raises(CorruptRecord, match="wall_s"):
        tmp_store.put(rec)
    assert not tmp_store.root.exists() or not list(tmp_store.root.rglob("*.json"))


def test_png_round_trip():
    img = np.random.default_rng(0).random((10, 12, 3))
    back = png_decode(png_base64(img))
    assert back.shape == (10, 12, 3)
    assert np.abs(back - img).max() < 1 / 255 + 1e-6


def test_stale_records_are_listed_apart_never_used(tmp_store):
    tmp_store.put(make_record())
    old = tmp_store.put(make_record(seed=1, results_version=RESULTS_VERSION - 1))
    assert [r["seed"] for r in tmp_store.records("numerosity", "ci")] == [0]
    assert [r["seed"] for r in tmp_store.records("numerosity", "ci", stale=True)] == [1]
    assert tmp_store.get("numerosity", "vae", "ci", 1, 3, PARAMS) is None and old.exists()


def test_a_record_names_the_commit_of_the_code_the_process_loaded(tmp_path, monkeypatch):
    """A sweep's workers keep running the code they imported while the work tree moves on (commits, edits): the
    commit their records name is the one taken at import, with no look at the tree later; ``commit_of`` reads a
    changed ``probe_utils/`` as dirty."""
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    (tmp_path / "probe_utils").mkdir()
    (tmp_path / "probe_utils" / "x.py").write_text("a = 1\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(git + cmd, cwd=tmp_path, check=True, capture_output=True)
    clean = store.commit_of(tmp_path)
    assert clean is not None and re.fullmatch(r"[0-9a-f]{40}", clean)
    (tmp_path / "probe_utils" / "x.py").write_text("a = 2\n")
    assert store.commit_of(tmp_path) == clean + "+dirty"
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("git asked after import"))
    assert store.git_commit() == store.git_commit() == store._LOADED_COMMIT
