import pytest

from probe_utils import experiments
from probe_utils.experiments import PRESETS, run
from probe_utils.params import ParameterError

BAD = [
    (dict(values=[0]), "'counts[0]'.*1..16"),
    (dict(values=[40]), "'counts[0]'.*1..16"),
    (dict(values=[2.5]), "'counts[0]'.*integer"),
    (dict(values="three"), "'counts[0]'"),
    (dict(values=[]), "'counts'.*non-empty"),
    (dict(values="[2,"), "'counts'.*list such as"),
    (dict(models=["dcgan"]), "'models[0]'.*wgan_gp"),
    (dict(models=3), "'models[0]'"),
    (dict(preset="huge"), "'preset'.*'ci'"),
    (dict(seeds=[-1]), "'seeds[0]'"),
    (dict(seeds=[1.5]), "'seeds[0]'.*integer"),
    (dict(seeds=0), "'seeds'.*1..1000"),
    (dict(seeds="x"), "'seeds[0]'"),
    (dict(device="tpu"), "'device'"),
    (dict(reuse="yes"), "'reuse'"),
]


@pytest.mark.parametrize("change,message", BAD)
def test_bad_parameters_fail_before_any_work(tmp_path, change, message):
    kwargs = dict(models=["vae"], values=[2], seeds=1, preset="ci", device="cpu", reuse=True)
    kwargs.update(change)
    with pytest.raises(ParameterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run("numerosity", store=tmp_path / "store", runs_dir=tmp_path / "runs", progress=False, **kwargs)
    assert not (tmp_path / "store").exists() and not (tmp_path / "runs").exists()


def test_unknown_experiment():
    with pytest.raises(ParameterError, match="'experiment'"):
        run("telepathy", models=["vae"], values=[1])


def test_run_stores_then_reuses(tmp_path, monkeypatch):
    kw = dict(models="vae", values="2", seeds=[0], preset="ci", device="cpu", store=tmp_path / "s",
              runs_dir=tmp_path / "r", progress=False)
    (rec,) = run("numerosity", **kw)
    assert rec["model"] == "vae" and rec["value"] == 2 and rec["preset"] == "ci"
    assert rec["provenance"]["steps"] == PRESETS["ci"].steps
    res = rec["result"]
    # the distribution is over measurable samples: it sums to 1, or to 0 when the counter refused them all
    assert abs(sum(res["distribution"]) - 1) < 1e-9 or (sum(res["distribution"]) == 0 and res["invalid_share"] == 1)
    assert set(res["readings"]) == {"split_merged", "ignore_faint"}
    assert len(rec["result"]["sample_values"]) == 16

    def boom(*a, **k):
        raise AssertionError("trained again although a matching record exists")

    monkeypatch.setattr(experiments, "run_one", boom)
    (again,) = run("numerosity", **kw)
    assert again == rec
    with pytest.raises(AssertionError):
        run("numerosity", **{**kw, "reuse": False})


def test_mixture_values_are_checked_and_canonical():
    from probe_utils.experiments import check_mixture, mixture_modes

    assert check_mixture("m", [0.4, 0.3]) == "0.3+0.4" == check_mixture("m", "0.3+0.4")
    assert check_mixture("m", "[0.9, 0.3]") == "0.3+0.9"
    assert mixture_modes("0.3+0.9") == [0.3, 0.9]
    for bad, msg in [([0.3], "two or more"), ("x", "two or more"), ([0.3, 1.2], r"'m\[1\]'"),
                     ([0.3, 0.3], "distinct")]:
        with pytest.raises(ParameterError, match=msg):
            check_mixture("m", bad)


@pytest.mark.parametrize("experiment,values", [("numerosity", "2"), ("pie_red", "0.3"), ("pie_red_mix", "0.3+0.9"),
                                               ("indep_red", "5"), ("mnist_combos", "10")])
def test_cli_run_trains_stores_and_summarises(tmp_path, capsys, experiment, values):
    import json

    from probe_utils.cli import main

    rc = main(["run", experiment, "--models", "vae", "--values", values, "--seeds", "1", "--preset", "ci",
               "--device", "cpu", "--store", str(tmp_path / "s"), "--quiet"])
    assert rc == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["model"] == "vae" and str(row["value"]) == values
    assert list((tmp_path / "s" / experiment / "ci").rglob("*.json"))
    if experiment == "mnist_combos" and row.get("measurable") != 0.0:  # a ci model's digits may all be refused
        assert {"precision", "recall", "novel_mass"} <= set(row)


def test_cli_run_width_override(tmp_path, capsys):
    from probe_utils.cli import main

    rc = main(["run", "pie_combos", "--models", "vae", "--values", "10", "--preset", "ci", "--device", "cpu",
               "--width", "4", "--pool-size", "128", "--store", str(tmp_path / "s"), "--quiet"])
    assert rc == 0
    (path,) = (tmp_path / "s" / "pie_combos" / "ci").rglob("*.json")
    import json

    params = json.loads(path.read_text())["params"]
    assert params["width"] == 4 and params["pool_size"] == 128


def test_cli_run_bad_parameter_exits_2(tmp_path, capsys):
    from probe_utils.cli import main

    rc = main(["run", "numerosity", "--models", "vae", "--values", "40", "--preset", "ci",
               "--store", str(tmp_path / "s")])
    assert rc == 2 and "parameter 'counts[0]'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_a_size_run_stores_its_ink_mass_reading(tmp_path):
    """Size records carry the radius read by ink mass beside the area reading: the same samples, the same refusals."""
    (rec,) = run("pie_size", models="vae", values=[0.6], seeds=[0], preset="ci", device="cpu",
                 store=tmp_path / "s", runs_dir=tmp_path / "r", progress=False)
    res = rec["result"]
    assert set(res["readings"]) == {"ink_mass"}
    ink = res["readings"]["ink_mass"]
    assert ink["invalid_share"] == res["invalid_share"] and len(ink["distribution"]) == len(res["distribution"])


def test_remeasure_adds_a_missing_reading_only_from_the_same_samples(tmp_path):
    """A record made before a reading existed gets it from its run's final checkpoint, exactly as a fresh run would
    have stored it; a record whose stored distribution the checkpoint does not reproduce is left as it is."""
    import torch

    from probe_utils.experiments import add_readings
    from probe_utils.store import Store

    torch.set_num_threads(1)
    store = Store(tmp_path / "s")
    kw = dict(models="wgan_gp", seeds=[0], preset="ci", device="cpu", store=store, runs_dir=tmp_path / "r",
              progress=False)
    (rec,) = run("numerosity", values=[2], **kw)
    (other,) = run("numerosity", values=[3], **kw)
    want = rec["result"]["readings"]["ignore_faint"]
    for r in (rec, other):  # as records made before the reading existed
        del r["result"]["readings"]["ignore_faint"]
    other["result"]["distribution"] = [1.0] + [0.0] * (len(other["result"]["distribution"]) - 1)  # not its samples
    store.put(rec)
    store.put(other)
    done = dict(add_readings(store, tmp_path / "r"))
    assert done[rec["key"]] == "added ignore_faint" and "came out different" in done[other["key"]]
    again = store.get("numerosity", "wgan_gp", "ci", 0, 2, rec["params"])
    assert again["result"]["readings"]["ignore_faint"] == want
    assert again["provenance"]["readings_added"]["names"] == ["ignore_faint"]
    assert "ignore_faint" not in store.get("numerosity", "wgan_gp", "ci", 0, 3, other["params"])["result"]["readings"]
    assert dict(add_readings(store, tmp_path / "r")) == {other["key"]: done[other["key"]]}  # nothing else to do
    (tmp_path / "r" / f"{other['key']}.pt").unlink()
    gone = dict(add_readings(store, tmp_path / "r"))[other["key"]]
    assert gone.startswith(f"left as it is: no checkpoint {other['key']}.pt in {tmp_path / 'r'} (to give it the "
                           f"readings, train the run again")


def test_stored_only_refuses_to_train(tmp_path, monkeypatch):
    kw = dict(models="vae", values=[2], seeds=[0], preset="ci", device="cpu", store=tmp_path / "s",
              runs_dir=tmp_path / "r", progress=False)
    run("numerosity", **kw)
    monkeypatch.setenv("PROBE_UTILS_STORED_ONLY", "1")
    assert run("numerosity", **kw)  # stored: loads
    with pytest.raises(ParameterError, match="not stored.*probe_utils run numerosity --models vae --values 3"):
        run("numerosity", **{**kw, "values": [2, 3]})
    assert not list((tmp_path / "s" / "numerosity" / "ci" / "vae").glob("3"))
