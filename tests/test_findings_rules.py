"""Every training-health gate and verdict rule of probe_utils.findings on synthetic records: one record that must
fail it and one that must pass it (and, where a rule can be fooled, the broken record that used to fool it)."""

from __future__ import annotations

import numpy as np
import pytest

from probe_utils import findings as F
from probe_utils.experiments import EXPERIMENTS, PRESETS


# --- synthetic records -----------------------------------------------------------------------------------------

def rec(experiment: str, value, dist, *, model: str = "vae", seed: int = 0, invalid: float = 0.0, probes=None,
        support=None, params: dict | None = None, n: int = 4000) -> dict:
    """A store-like record whose final distribution is ``dist``; ``probes``: distributions measured during training
    (default: two copies of ``dist``, so no drift)."""
    d = np.asarray(dist, float)
    d = d / d.sum() if d.sum() > 0 else d
    pre = PRESETS["cpu"]
    probes = [d, d] if probes is None else [np.asarray(p, float) / np.sum(p) for p in probes]
    r = {"experiment": experiment, "model": model, "value": value, "seed": seed, "preset": "cpu",
         "key": f"{experiment}-{model}-{value}-{seed}-{params}",
         "params": {"width": pre.width, "pool_size": pre.pool_size, "probe_samples": 1000, **(params or {})},
         "provenance": {"steps": 100, "n_parameters": 10},
         "result": {"distribution": d.tolist(), "n_samples": n, "invalid_share": invalid,
                    "probes": [{"step": 100 * (i + 1), "dist": p.tolist()} for i, p in enumerate(probes)]}}
    if support is not None:
        r["result"]["train_support"] = [int(i) for i in support]
    return r


def counts(shares: dict[int, float], bins: int = 25) -> np.ndarray:
    d = np.zeros(bins)
    for k, v in shares.items():
        d[k] = v
    return d


def gauss(experiment: str, mu: float, sd: float, skew: float = 0.0) -> np.ndarray:
    """A (skew-)normal bump over the experiment's bins."""
    c = EXPERIMENTS[experiment].centres
    z = (c - mu) / sd
    return np.exp(-0.5 * z ** 2) * (1 + np.tanh(skew * z))


def seeds(experiment: str, value, dists, **kw) -> list[dict]:
    return [rec(experiment, value, d, seed=i, **kw) for i, d in enumerate(dists)]


# --- verdicts --------------------------------------------------------------------------------------------------

def test_judge_vocabulary():
    assert F.judge([True, True]).label == "agrees 2/2"
    assert F.judge([True, False, None]).label == "partly 1/3"
    assert F.judge([False, None]).label == "disagrees 0/2"
    assert F.judge([None, None]).verdict == F.NOT_TESTABLE and F.WITHIN_NOISE in F.judge([None]).reasons
    empty = F.judge([], ("3 runs fail their training-health gate",))
    assert empty.verdict == F.NOT_TESTABLE and empty.reasons == ("3 runs fail their training-health gate",)
    assert {F.judge(o).verdict for o in ([True], [True, False], [False], [])} == set(F.VERDICTS)


def test_a_verdict_names_the_settings_left_undecided_and_those_against_the_claim():
    """A reader of "partly 1/3" can see which setting went against the claim and which was undecided; a real claim
    (numerosity, two counts scored: one centred, one not) names them the same way."""
    v = F.judge([True, False, None], settings=["VAE 1", "VAE 3", "WGAN-GP 5"])
    assert v.label == "partly 1/3"
    assert v.reasons == ("against the claim: VAE 3", f"1 of 3 undecided (WGAN-GP 5): {F.WITHIN_NOISE}")
    assert F.judge([True, True], settings=["a", "b"]).reasons == ()
    assert F.judge([False, None], settings=["a", "b"]).reasons == (f"1 of 2 undecided (b): {F.WITHIN_NOISE}",)
    many = F.judge([True] + [False] * 8, settings=[f"VAE {i}" for i in range(9)])
    assert many.reasons == ("against the claim: VAE 1, VAE 2, VAE 3, VAE 4, VAE 5, VAE 6 and 2 more",)
    with pytest.raises(ValueError, match="one label per outcome"):
        F.judge([True, False], settings=["only one"])
    recs = seeds("numerosity", 1, [counts({1: 0.9, 2: 0.1})] * 2) + \
        seeds("numerosity", 3, [counts({3: 0.4, 5: 0.3, 6: 0.3})] * 2)
    centred = F.numerosity_findings(recs).verdict("numerosity.centred")
    assert centred.label == "partly 1/2" and centred.reasons[0] == "against the claim: VAE 3"


def test_a_number_next_to_its_threshold_shows_the_digits_that_decide_it():
    """A TV of 0.2496 against "below 0.25" reads 0.2496 (0.25 would look like a miss counted as a hit); numbers away
    from the threshold keep their usual decimals; NaN reads "–"."""
    below = lambda t: t < 0.25  # noqa: E731
    assert F.on_its_side(0.2496, below, 2, percent=False) == "0.2496"
    assert F.on_its_side(0.2504, below, 2, percent=False) == "0.25"  # shown 0.25 misses, as the value does
    assert F.on_its_side(0.1234, below, 2, percent=False) == "0.12"
    assert F.on_its_side(0.8996, lambda x: x >= 0.9) == "89.96%" and F.on_its_side(0.95, lambda x: x >= 0.9) == "95%"
    assert F.on_its_side(float("nan"), below, 2, percent=False) == "–"


def test_noise_helpers():
    assert F.beyond(0.3, 0.1) is True and F.beyond(-0.3, 0.1) is False and F.beyond(0.05, 0.1) is None
    assert F.within(0.02, 0.05, 0.01) is True and F.within(0.08, 0.05, 0.01) is False
    assert F.within(0.045, 0.05, 0.01) is None
    assert F.tv_within(0.1, 0.25, 0.5) is True and F.tv_within(0.4, 0.25, 0.1) is False
    assert F.tv_within(0.4, 0.25, 0.5) is None  # above the limit, but the run differs that much from itself
    moving = rec("numerosity", 3, counts({3: 0.6, 4: 0.4}), probes=[counts({3: 1.0}), counts({3: 0.6, 4: 0.4})])
    assert F.drift([moving], F._share_at(3)) == pytest.approx(0.4)
    assert F.noise([moving], F._share_at(3)) == pytest.approx(0.4)


# --- gates -----------------------------------------------------------------------------------------------------

def test_count_gate():
    good = rec("numerosity", 3, counts({2: 0.2, 3: 0.5, 4: 0.3}))
    blank = rec("numerosity", 3, counts({0: 0.8, 3: 0.2}))
    mush = rec("numerosity", 3, counts({3: 1.0}), invalid=0.6)
    assert F.gate(good).passed
    assert not F.gate(blank).passed and "most frequent count is 0" in F.gate(blank).reason
    assert not F.gate(mush).passed and "40% of samples measurable" in F.gate(mush).reason


def test_continuous_gate():
    good = rec("pie_red", 0.5, gauss("pie_red", 0.5, 0.05))
    off = rec("pie_red", 0.5, gauss("pie_red", 0.8, 0.05))
    one_value = np.zeros(50)
    one_value[-1] = 1
    degenerate = rec("pie_red", 0.9, one_value)
    assert F.gate(good).passed
    assert "more than one grid step" in F.gate(off).reason
    assert "degenerate" in F.gate(degenerate).reason


def test_mixture_gate_rests_on_the_single_value_runs():
    mix = rec("pie_red_mix", "0.3+0.9", gauss("pie_red", 0.3, 0.05) + gauss("pie_red", 0.9, 0.05))
    good = [rec("pie_red", v, gauss("pie_red", v, 0.05)) for v in (0.3, 0.9)]
    spike = np.zeros(50)
    spike[-1] = 1
    bad = [good[0], rec("pie_red", 0.9, spike)]
    assert F.gate(mix, good).passed
    assert "red 0.9 fail their gate" in F.gate(mix, bad).reason
    assert "no single-value run at red 0.3" in F.gate(mix, good[1:]).reason


def _three(sd: float = 0.02, keep=(0.3, 0.4, 0.9)) -> np.ndarray:
    return sum(gauss("indep_red", v, sd) for v in keep)


def test_independence_gate_rests_on_the_fewest_nuisance_values():
    ok = [rec("indep_red", 1, _three()), rec("indep_red", 10, _three(0.03))]
    lost = [rec("indep_red", 1, _three(keep=(0.4, 0.9))), rec("indep_red", 10, _three())]
    assert all(F.gate(r, ok).passed for r in ok)
    assert not F.gate(lost[0], lost).passed and "near 0.3" in F.gate(lost[0], lost).reason
    assert not F.gate(lost[1], lost).passed  # its reference (1 nuisance value) lost a trained value
    lost.append(rec("indep_red", 50, _three()))
    note = F.gate_note(lost, [(r, F.gate(r, lost)) for r in lost])
    assert "VAE 1, 10, 50, seed 0: the run with 1 nuisance value puts only 0% near 0.3" in note  # one reason, once


def test_combinations_gate_rests_on_the_fewest_combinations():
    support = np.arange(10)
    memorised = rec("pie_combos", 10, np.bincount(np.repeat(support, 10), minlength=2025), support=support)
    spread = rec("pie_combos", 10, np.ones(2025), support=support)
    more = rec("pie_combos", 400, np.ones(2025), support=np.arange(400))
    assert F.gate(memorised, [memorised, more]).passed and F.gate(more, [memorised, more]).passed
    assert "only 0% of samples on them" in F.gate(spread, [spread]).reason
    assert not F.gate(more, [spread, more]).passed


def test_pairs_gate():
    assert F.gate(rec("clevr_pairs_4x4", "shape", np.ones(16))).passed
    assert not F.gate(rec("clevr_pairs_4x4", "shape", np.ones(16), invalid=0.7)).passed


def test_gates_table_lists_every_experiment():
    text = str(F.gates_table())
    assert all(f"`{name}`" in text for name in EXPERIMENTS) and "50%" in text


# --- numerosity ------------------------------------------------------------------------------------------------

SPREAD = counts({2: 0.2, 3: 0.4, 4: 0.3, 5: 0.1})


def test_not_always_exact():
    assert F.rule_not_always_exact(seeds("numerosity", 3, [SPREAD] * 3)) is True
    assert F.rule_not_always_exact(seeds("numerosity", 3, [counts({3: 1.0})] * 3)) is False
    blank = seeds("numerosity", 3, [counts({0: 1.0})] * 3)
    assert F.rule_not_always_exact(blank) is None  # a broken model never passes
    found = F.numerosity_findings(blank)
    assert found.verdict("numerosity.not_always_exact").verdict == F.NOT_TESTABLE
    assert "fail their training-health gate" in found.verdict("numerosity.not_always_exact").reasons[0]
    assert "not testable at this scale" in str(found)


def _read(recs, **readings):
    """The records with alternative readings (name -> distribution) stored beside the main one."""
    for r in recs:
        r["result"]["readings"] = {n: {"distribution": (d / d.sum()).tolist(), "invalid_share": 0.0}
                                   for n, d in readings.items()}
    return recs


def test_a_verdict_the_counting_rule_decides_is_not_testable():
    """When a reading of the same samples (faint blobs left out) gives another answer, the verdict fails over to
    not testable and says both answers; when every reading agrees, the verdict stands."""
    more = counts({2: 0.1, 3: 0.5, 4: 0.4})            # as counted: ghosts make a fourth dot
    fewer = counts({2: 0.4, 3: 0.5, 4: 0.1})           # the same samples, faint blobs left out
    split = more
    key = "numerosity.more"
    plain = F.numerosity_findings(seeds("numerosity", 3, [more] * 3))
    assert plain.verdict(key).verdict == F.AGREES and not any("readings" in n for n in plain.notes)
    decided = F.numerosity_findings(_read(seeds("numerosity", 3, [more] * 3), split_merged=split, ignore_faint=fewer))
    v = decided.verdict(key)
    assert v.verdict == F.NOT_TESTABLE and "agrees 1/1 as counted" in v.reasons[0]
    assert "disagrees 0/1 with faint blobs left out" in v.reasons[0]
    assert "**1 of 4 get another answer**" in decided.notes[-1]
    same = F.numerosity_findings(_read(seeds("numerosity", 3, [more] * 3), split_merged=more, ignore_faint=more))
    assert same.verdict(key) == plain.verdict(key) and "no verdict gets another answer" in same.notes[-1]
    half = seeds("numerosity", 3, [more] * 3)
    _read(half[:2], split_merged=more, ignore_faint=fewer)  # one record lacks the readings: not checked, and said
    assert F.numerosity_findings(half).verdict(key).verdict == F.AGREES
    assert "Not checked against" in F.numerosity_findings(half).notes[-1]


def test_a_reading_that_only_leaves_settings_undecided_does_not_overturn_a_verdict():
    """Readings conflict when their decided settings go different ways, not when one reading leaves a setting
    undecided: "agrees 2/2" as counted next to "partly 1/2" (the other undecided) stands, and names the other;
    a setting that contradicts the claim under the other reading makes it not testable."""
    agrees, undecided, contra = F.judge([True, True]), F.judge([True, None]), F.judge([True, False])
    assert undecided.label == "partly 1/2" and undecided.answer == agrees.answer == (True, False)
    assert contra.answer == (True, True) and F.judge([None]).answer is None and F.judge([False]).answer == (False, True)
    main = F.Findings("a", [F.Claim("k", "claim", "shows", agrees)], [])

    def alt(verdict):
        return lambda recs: F.Findings("a", [F.Claim("k", "claim", "shows", verdict)], [])

    recs = _read(seeds("numerosity", 3, [SPREAD]), split_merged=SPREAD, ignore_faint=SPREAD)
    kept = F.robust(main, recs, alt(undecided)).verdict("k")
    assert kept.verdict == F.AGREES and any("partly 1/2 with" in r for r in kept.reasons)
    assert F.robust(main, recs, alt(contra)).verdict("k").verdict == F.NOT_TESTABLE
    assert F.robust(main, recs, alt(F.judge([None]))).verdict("k").verdict == F.AGREES


def test_a_gate_a_reading_would_pass_is_named():
    ghost = counts({3: 0.3, 4: 0.5, 5: 0.2})  # mode 4 when trained on 3: fails its gate as counted
    clean = counts({2: 0.2, 3: 0.6, 4: 0.2})
    found = F.numerosity_findings(_read(seeds("numerosity", 3, [ghost] * 2), split_merged=ghost, ignore_faint=clean))
    assert found.verdict("numerosity.centred").verdict == F.NOT_TESTABLE
    assert "With faint blobs left out" in found.notes[-1] and "2 of the 2 runs that fail their gate" in found.notes[-1]


def test_centred():
    assert F.rule_centred(seeds("numerosity", 3, [SPREAD] * 3)) is True
    tail = counts({3: 0.3, 6: 0.25, 7: 0.25, 8: 0.2})  # mode at 3 but mean 5.6
    assert F.rule_centred(seeds("numerosity", 3, [tail] * 3)) is False


def test_more_than_fewer_is_compared_with_the_seed_spread():
    more = counts({2: 0.1, 3: 0.5, 4: 0.4})
    fewer = counts({2: 0.4, 3: 0.5, 4: 0.1})
    assert F.rule_more_than_fewer(seeds("numerosity", 3, [more] * 3)) is True
    assert F.rule_more_than_fewer(seeds("numerosity", 3, [fewer] * 3)) is False
    assert F.rule_more_than_fewer(seeds("numerosity", 3, [more, fewer, more])) is None  # seeds disagree


def test_spread_grows():
    narrow, wide = counts({2: 0.1, 3: 0.8, 4: 0.1}), counts({5: 0.2, 6: 0.2, 7: 0.2, 8: 0.2, 9: 0.2})
    wide3 = counts({1: 0.2, 2: 0.2, 3: 0.3, 4: 0.2, 5: 0.1})
    narrow7 = counts({6: 0.1, 7: 0.8, 8: 0.1})
    assert F.rule_spread_grows([seeds("numerosity", 3, [narrow]), seeds("numerosity", 7, [wide])]) is True
    assert F.rule_spread_grows([seeds("numerosity", 3, [wide3]), seeds("numerosity", 7, [narrow7])]) is False


# --- colour, size, location ------------------------------------------------------------------------------------

def test_red_centred():
    assert F.rule_red_centred(seeds("pie_red", 0.5, [gauss("pie_red", 0.5, 0.05)])) is True
    assert F.rule_red_centred(seeds("pie_red", 0.5, [gauss("pie_red", 0.59, 0.05)])) is False


def _red(v: float, sd: float, mu: float | None = None) -> list[dict]:
    return seeds("pie_red", v, [gauss("pie_red", v if mu is None else mu, sd)])


def test_sharper_at_extremes_and_saturation():
    assert F.rule_sharper_at_extremes([_red(0.1, 0.03), _red(0.5, 0.08), _red(0.9, 0.03)]) is True
    assert F.rule_sharper_at_extremes([_red(0.1, 0.08), _red(0.5, 0.03), _red(0.9, 0.08)]) is False
    floor = np.zeros(50)
    floor[0], floor[2] = 0.7, 0.3
    piled = seeds("pie_red", 0.1, [floor])  # most samples read as "no red": the sd says nothing
    assert F.saturated(piled)
    assert F.rule_sharper_at_extremes([piled, _red(0.5, 0.08), _red(0.9, 0.03)]) is None
    found = F.pie_findings({"pie_red": piled + _red(0.5, 0.08) + _red(0.9, 0.03)})
    weber = found.verdict("pie.red_weber")
    assert weber.verdict == F.NOT_TESTABLE and weber.reasons[0] == \
        "a response it compares is saturated at the measurement's floor or ceiling (VAE)"


def test_an_undecided_comparison_does_not_say_too_few_settings_were_scored():
    """Three red values scored, their sds equal (within the noise): the Weber claim is not testable because of the
    noise, not because "fewer than three trained values" were scored; with two values it is."""
    def drifting(v: float) -> list[dict]:  # its sd still moved at the end of training: the noise is wide
        d = gauss("pie_red", v, 0.05)
        return [rec("pie_red", v, d, probes=[gauss("pie_red", v, 0.08), d])]

    same = drifting(0.3) + drifting(0.5) + drifting(0.7)
    assert F.rule_sharper_at_extremes([drifting(0.3), drifting(0.5), drifting(0.7)]) is None
    weber = F.pie_findings({"pie_red": same}).verdict("pie.red_weber")
    assert weber.verdict == F.NOT_TESTABLE and weber.reasons == (F.WITHIN_NOISE,)
    weber = F.pie_findings({"pie_red": _red(0.3, 0.05) + _red(0.7, 0.05)}).verdict("pie.red_weber")
    assert weber.verdict == F.NOT_TESTABLE and weber.reasons == ("fewer than three trained values scored",)


def test_an_undecided_reason_names_the_settings_of_each_cause():
    cause = ("a size is at chance precision", ["pie at 200", "pie at 400"])
    assert F._counted_undecided(cause, ["pie at 10", "pie at 200"]) == \
        f"a size is at chance precision (pie at 200); {F.WITHIN_NOISE} (pie at 10)"  # 400 was decided: not named
    assert F._counted_undecided(cause, ["pie at 10"]) == F.WITHIN_NOISE
    assert F._counted_undecided(cause, ["pie at 400"]) == "a size is at chance precision (pie at 400)"
    assert F._undecided(["a", "b", "c"], [True, None, False]) == ["b"]


def test_weber_names_the_cause_that_left_each_family_undecided():
    """Two families undecided for different causes: one compares a response piled on the floor, the other's sds
    are equal within the noise. The reason counts each cause, not "saturated, or within the noise" for both."""
    floor = np.zeros(50)
    floor[0], floor[2] = 0.7, 0.3
    piled = seeds("pie_red", 0.1, [floor], model="wgan_gp") + _red(0.5, 0.08) + _red(0.9, 0.03)
    for r in piled[1:]:
        r["model"] = "wgan_gp"
    drifting = [rec("pie_red", v, gauss("pie_red", v, 0.05),
                    probes=[gauss("pie_red", v, 0.08), gauss("pie_red", v, 0.05)]) for v in (0.1, 0.5, 0.9)]
    weber = F.pie_findings({"pie_red": piled + drifting}).verdict("pie.red_weber")
    assert weber.verdict == F.NOT_TESTABLE
    assert weber.reasons[0] == ("a response it compares is saturated at the measurement's floor or ceiling "
                                f"(WGAN-GP); {F.WITHIN_NOISE} (VAE)")
    assert F.pie_findings({"pie_red": drifting}).verdict("pie.red_weber").reasons == (F.WITHIN_NOISE,)


def test_symmetric_and_degenerate():
    assert F.rule_symmetric(_red(0.5, 0.05)) is True
    assert F.rule_symmetric(seeds("pie_red", 0.5, [gauss("pie_red", 0.45, 0.08, skew=3)])) is False
    spike = np.zeros(50)
    spike[25] = 1
    degenerate = seeds("pie_red", 0.5, [spike])
    assert F.rule_symmetric(degenerate) is None  # skewness of a response without spread is undefined, not 0
    assert F.pie_findings({"pie_red": degenerate}).verdict("pie.red_symmetric").verdict == F.NOT_TESTABLE
    # why settings are undecided, counted (the gate already keeps degenerate runs out of the verdicts)
    assert F._skew_undecided([degenerate, _red(0.3, 0.05)], [None, None]) == \
        f"the sd is 0, so the skewness is undefined (VAE 0.5); {F.WITHIN_NOISE} (VAE 0.3)"
    assert F._skew_undecided([_red(0.3, 0.05)], [None]) == F.WITHIN_NOISE
    strays = gauss("pie_red", 0.3, 0.04)
    strays = strays / strays.sum()
    strays[0] += 0.004  # a few misdrawn pies read as no red: they decide the third moment, not the response's shape
    with_strays = seeds("pie_red", 0.3, [strays])
    assert F.A.response_shape(strays, EXPERIMENTS["pie_red"].centres)["skewness"] < -0.5
    assert F.rule_symmetric(with_strays) is True
    (shows,) = [c.shows for c in F.pie_findings({"pie_red": with_strays}).claims if c.key == "pie.red_symmetric"]
    assert "stray samples far from it left out (at most 0.4% of a response)" in shows
    assert F.rule_symmetric(with_strays, key="skewness") is False  # the other reading, shown beside it
    assert "over all samples, strays included: yes in 0, no in 1, undecided in 0" in shows


def test_skewness_claims_say_which_settings_are_not_scored_before_the_strays():
    """Each skewness claim names the settings every run of which fails its gate, as the centring claim does, right
    after its count (not after the strays' clause, nor with a space before a semicolon)."""
    strays = gauss("pie_red", 0.3, 0.04)
    strays = strays / strays.sum()
    strays[0] += 0.004
    red = seeds("pie_red", 0.3, [strays]) + _red(0.5, 0.05, mu=0.3)  # the second is off by two grid steps
    size = [*seeds("pie_size", 0.6, [gauss("pie_size", 0.6, 0.03)]),
            *seeds("pie_size", 0.5, [gauss("pie_size", 0.7, 0.03)])]
    found = F.pie_findings({"pie_red": red, "pie_size": size, "pie_location": []})
    shows = {c.key: c.shows for c in found.claims}
    assert shows["pie.red_symmetric"].startswith(
        f"|skewness| < {F.SYMMETRIC_SKEW} in 1 of 1 settings (1 setting not scored: every run fails its gate); "
        "skewness of each response's bump")
    assert shows["pie.size_larger"].startswith(
        "positive skewness in 0 of 1 settings, negative in 0 (1 setting not scored: every run fails its gate)")
    assert all(" ;" not in s for s in shows.values())


def test_size_skewed_larger():
    right = seeds("pie_size", 0.6, [gauss("pie_size", 0.58, 0.05, skew=3)])
    left = seeds("pie_size", 0.6, [gauss("pie_size", 0.62, 0.05, skew=-3)])
    assert F.rule_skewed_larger(right) is True and F.rule_skewed_larger(left) is False


def _leaning_peak(right: bool, tail: float = 0.0) -> np.ndarray:
    """A size response peaked at 0.6 whose right (or left) neighbour bin holds more than the other, with ``tail``
    of the mass far to the left (discs read smaller)."""
    c = EXPERIMENTS["pie_size"].centres
    d = np.zeros(len(c))
    m = int(np.argmin(np.abs(c - 0.6)))
    d[m], d[m + 1], d[m - 1], d[m + 2], d[m - 2] = 1.0, 0.45, 0.2, 0.1, 0.03
    if not right:
        d = np.zeros(len(c))
        d[m], d[m - 1], d[m + 1], d[m - 2], d[m + 2] = 1.0, 0.45, 0.2, 0.1, 0.03
    d = d / d.sum() * (1 - tail)
    d[m - 5] += tail
    return d


def test_right_flank_reading_and_where_it_overturns_the_skewness():
    assert F.rule_right_flank_longer(seeds("pie_size", 0.6, [_leaning_peak(True)])) is True
    assert F.rule_right_flank_longer(seeds("pie_size", 0.6, [_leaning_peak(False)])) is False
    # a peak leaning right with 5% read far smaller: the skewness says no, the flanks yes -> the statistic decides
    thin_tail = seeds("pie_size", 0.6, [_leaning_peak(True, tail=0.05)])
    assert F.rule_skewed_larger(thin_tail) is False and F.rule_right_flank_longer(thin_tail) is True
    found = F.pie_findings({"pie_red": [], "pie_size": thin_tail, "pie_location": []})
    v = found.verdict("pie.size_larger")
    assert v.verdict == F.NOT_TESTABLE
    assert v.reasons == ("the shape statistic decides it: disagrees 0/1 by the bump's skewness; agrees 1/1 by the "
                         "peak's flanks",)
    assert "the peak's right flank (half-width at half maximum) longer in 1, shorter in 0" in \
        next(c.shows for c in found.claims if c.key == "pie.size_larger")
    # both readings agree: the skewness's verdict stands, with nothing added
    clean = seeds("pie_size", 0.6, [_leaning_peak(True)])
    assert F.rule_skewed_larger(clean) is True
    assert F.pie_findings({"pie_red": [], "pie_size": clean, "pie_location": []}).verdict(
        "pie.size_larger").label == "agrees 1/1"
    # both lean left: disagrees stands (the rule can still fail)
    left = seeds("pie_size", 0.6, [_leaning_peak(False)])
    assert F.pie_findings({"pie_red": [], "pie_size": left, "pie_location": []}).verdict(
        "pie.size_larger").label == "disagrees 0/1"


def _ink_read(recs: list[dict], dist: np.ndarray) -> list[dict]:
    """The records with ``dist`` as their ink-mass size reading."""
    for r in recs:
        r["result"]["readings"] = {"ink_mass": {"distribution": (dist / dist.sum()).tolist(), "invalid_share": 0.0}}
    return recs


def test_size_claim_is_read_by_the_ink_mass_radius_where_every_run_carries_it():
    """Blur reads the area radius smaller, not the ink-mass radius: where the latter's skewness goes another way the
    verdict is not testable, naming it; where it agrees the verdict stands (and can still fail); where some scored
    runs lack the reading, the claim says for how many it is stored, is judged without it, and says what the reading
    shows on the runs that carry it."""
    right, left = _leaning_peak(True), _leaning_peak(False)

    def size_claim(recs):
        found = F.pie_findings({"pie_red": [], "pie_size": recs, "pie_location": []})
        return found.verdict("pie.size_larger"), next(c.shows for c in found.claims if c.key == "pie.size_larger")

    v, shows = size_claim(_ink_read(seeds("pie_size", 0.6, [right]), right))
    assert v.label == "agrees 1/1"
    assert shows.endswith("; by the ink-mass radius, which blur does not move: positive skewness in 1, negative in 0; "
                          "right flank longer in 1, shorter in 0")
    v, _ = size_claim(_ink_read(seeds("pie_size", 0.6, [right]), left))
    assert v.verdict == F.NOT_TESTABLE
    assert v.reasons == ("how the size is read decides it: agrees 1/1 by the bump's skewness; disagrees 0/1 by the "
                         "ink-mass radius's skewness; disagrees 0/1 by the ink-mass radius's flanks",)
    v, _ = size_claim(_ink_read(seeds("pie_size", 0.6, [left]), left))
    assert v.label == "disagrees 0/1"
    mixed = seeds("pie_size", 0.6, [right, right])
    _ink_read(mixed[:1], left)
    v, shows = size_claim(mixed)
    assert v.label == "agrees 1/1"
    assert "not read by the ink-mass radius, which blur does not move: it is stored for 1 of 2 scored runs" in shows
    # ... and what it reads on the runs that carry it is said, outside the verdict
    assert shows.endswith("(records made before it existed), not in the verdict: on those runs (1 setting): "
                          "positive skewness in 0, negative in 1; right flank longer in 0, shorter in 1")
    _, shows = size_claim(seeds("pie_size", 0.6, [right, right]))
    assert shows.endswith("it is stored for 0 of 2 scored runs (records made before it existed)")


def test_shape_table_shows_the_flanks_as_the_rule_reads_them():
    """The shape table's "right ÷ left flank" column is the geometric mean over seeds, so it reads above 1 exactly
    where the flank rule leans right (an arithmetic mean of 2.0 and 0.4 would read 1.2 for a peak the rule reads
    leaning left)."""
    one = F.shape_table(seeds("pie_size", 0.6, [_leaning_peak(True)]), EXPERIMENTS["pie_size"].centres)
    header = [c.strip() for c in str(one).splitlines()[0].split("|")[1:-1]]
    cell = dict(zip(header, [c.strip() for c in str(one).splitlines()[2].split("|")[1:-1]]))
    assert float(cell["right ÷ left flank"]) > 1
    rows = F.A.shape_rows(seeds("pie_size", 0.6, [_leaning_peak(True), _leaning_peak(False)]),
                          EXPERIMENTS["pie_size"].centres)
    ratios = [F.A.response_shape(d, EXPERIMENTS["pie_size"].centres)["hwhm_ratio"]
              for d in (_leaning_peak(True), _leaning_peak(False))]
    assert rows[0]["hwhm_ratio"] == pytest.approx(float(np.sqrt(ratios[0] * ratios[1])))


def test_sharper_than_red():
    red = [_red(v, 0.08) for v in (0.3, 0.5, 0.7)]
    sharp = [seeds("pie_size", v, [gauss("pie_size", v, 0.01)]) for v in (0.5, 0.6)]
    blunt = [seeds("pie_size", v, [gauss("pie_size", v, 0.08)]) for v in (0.5, 0.6)]
    assert F.rule_sharper_than_red(red, sharp) is True and F.rule_sharper_than_red(red, blunt) is False


# --- convolution -----------------------------------------------------------------------------------------------

def _row(actual, predicted, a=0.3, b=0.4) -> dict:
    c = EXPERIMENTS["pie_red"].centres
    proto = F.A.prototype_enhancement(actual, predicted, c, a, b)
    return {"model": "vae", "value": f"{a:g}+{b:g}", "gap": b - a, "tv": F.A.distribution_distance(actual,
            predicted)["tv"], "window": proto["window"], "actual_mid": proto["actual_mid"],
            "predicted_mid": proto["predicted_mid"], "mode_in_middle": proto["actual_mode_in_window"]}


def test_far_modes_match_the_convolution():
    pred = gauss("pie_red", 0.3, 0.03) + gauss("pie_red", 0.9, 0.03)
    same = _row(pred, pred, 0.3, 0.9)
    other = _row(gauss("pie_red", 0.6, 0.03), pred, 0.3, 0.9)
    runs = seeds("pie_red_mix", "0.3+0.9", [pred])
    assert F.rule_far_matches(same, runs) is True and F.rule_far_matches(other, runs) is False


def test_prototype_and_snap():
    pred = gauss("pie_red", 0.3, 0.02) + gauss("pie_red", 0.4, 0.02)
    merged, apart = gauss("pie_red", 0.35, 0.02), gauss("pie_red", 0.3, 0.01) + gauss("pie_red", 0.4, 0.01)
    runs = seeds("pie_red_mix", "0.3+0.4", [merged])
    assert F.rule_prototype(_row(merged, pred), runs) is True and F.rule_snap(_row(merged, pred)) is True
    assert F.rule_prototype(_row(apart, pred), runs) is False and F.rule_snap(_row(apart, pred)) is False


# --- independence ----------------------------------------------------------------------------------------------

def test_unchanged():
    same = seeds("indep_red", 1, [_three()]) + seeds("indep_red", 50, [_three()])
    assert F.rule_unchanged(0.05, same) is True and F.rule_unchanged(0.6, same) is False
    jumpy = [rec("indep_red", 1, _three(), probes=[_three(keep=(0.3,)), _three(keep=(0.9,))])]
    assert F.rule_unchanged(0.6, jumpy) is None  # the run moves that much between its own last probes


def test_unchanged_counts_mass_that_moves_not_a_mode_that_widens():
    """A response whose modes only widen (the paper's second claim) is unchanged, although the TV distance between
    the whole distributions is large; one that loses a trained value is not."""
    narrow = seeds("indep_size", 1, [sum(gauss("indep_size", v, 0.004) for v in (0.5, 0.55, 0.8))])
    wide = seeds("indep_size", 10, [sum(gauss("indep_size", v, 0.012) for v in (0.5, 0.55, 0.8))])
    assert F._tv(F._mean_dist(narrow), F._mean_dist(wide)) > 0.3  # the whole distributions overlap little
    assert F.mass_shift(narrow + wide) < 0.05 and F.rule_unchanged(F.mass_shift(narrow + wide), narrow + wide)
    lost = seeds("indep_size", 10, [sum(gauss("indep_size", v, 0.004) for v in (0.55, 0.8))])
    assert abs(F.mass_shift(narrow + lost) - 1 / 3) < 0.02
    assert F.rule_unchanged(F.mass_shift(narrow + lost), narrow + lost) is False
    off = seeds("indep_red", 50, [gauss("indep_red", 0.1, 0.02) + _three()])  # mass below every window
    assert F.mode_masses("indep_red", F._mean_dist(off))[-1] > 0.2
    assert F.rule_unchanged(F.mass_shift(seeds("indep_red", 1, [_three()]) + off), off) is False


def test_variance_rises_per_mode():
    fewest = seeds("indep_red", 1, [_three(0.02)])
    assert F.rule_variance_rises(fewest, seeds("indep_red", 50, [_three(0.03)])) is True
    assert F.rule_variance_rises(seeds("indep_red", 1, [_three(0.03)]), seeds("indep_red", 50, [_three(0.02)])) \
        is False
    lost = seeds("indep_red", 50, [_three(0.02, keep=(0.3, 0.4))])
    whole = [F.A.response_shape(F._mean_dist(x), EXPERIMENTS["indep_red"].centres)["sd"] for x in (fewest, lost)]
    assert whole[1] < whole[0]  # the mixture's sd falls when the mode at 0.9 is lost ...
    assert F.rule_variance_rises(fewest, lost) is None  # ... which is not read as "the variance falls"
    # undecided for two reasons, counted: every mode lost (VAE), no difference beyond the noise (WGAN-GP)
    gone = rec("indep_red", 50, gauss("indep_red", 0.1, 0.02))
    same = [rec("indep_red", k, _three(), model="wgan_gp") for k in (1, 50)]
    found = F.independence_findings({"indep_red": [rec("indep_red", 1, _three()), gone, *same]})
    assert next(c for c in found.claims if c.key == "independence.variance_rises").verdict.reasons == (
        f"no trained value keeps its mode in both runs (red VAE); {F.WITHIN_NOISE} (red WGAN-GP)",)


# --- combinations ----------------------------------------------------------------------------------------------

def _point(precision: float, m: int, total: int = 2025, noise: float = 0.0, recall: float = 1.0) -> dict:
    chance = m / total
    return {"precision": precision, "recall": recall, "chance": chance, "noise": noise, "n_train": m,
            "lift": (precision - chance) / (1 - chance)}


def test_recall_and_memorised():
    assert F.rule_recall_high(_point(1, 10)) is True and F.rule_recall_high(_point(1, 10, recall=0.5)) is False
    assert F.rule_memorised(_point(1.0, 10)) is True and F.rule_memorised(_point(0.5, 10)) is False
    assert F.rule_memorised(_point(0.9, 1900)) is None  # chance precision alone is 0.94


def test_precision_falls_counts_chance():
    assert F.rule_precision_falls(_point(1.0, 10), _point(0.3, 400)) is True
    assert F.rule_precision_falls(_point(0.3, 10), _point(1.0, 400)) is False
    # raw precision rises from 0.5 to 0.6, but chance rises from 0.5% to 49%: new combinations do appear
    assert F.rule_precision_falls(_point(0.5, 10), _point(0.6, 1000)) is True
    # a model uniform over all combinations: precision = chance at every m, nothing to say
    assert F.rule_precision_falls(_point(10 / 2025, 10), _point(400 / 2025, 400)) is None


def test_size_invariance_needs_runs_above_chance():
    assert F.rule_size_invariant([_point(1.0, 10), _point(0.97, 10)]) is True
    assert F.rule_size_invariant([_point(1.0, 10), _point(0.5, 10)]) is False
    at_chance = [_point(0.2, 400), _point(0.298, 400)]  # range 0.098 < 0.1, but both at chance
    assert F.rule_size_invariant(at_chance) is None


def test_combination_findings_for_a_broken_model_are_not_testable():
    support = np.arange(10)
    spread = [rec("pie_combos", 10, np.ones(2025), support=support),
              rec("pie_combos", 400, np.ones(2025), support=np.arange(400))]
    found = F.combination_findings({"pie_combos": spread})
    assert all(c.verdict.verdict == F.NOT_TESTABLE for c in found.claims)
    status = {c.key: c.verdict.status for c in found.claims}
    assert status["combinations.recall"] == F.NOT_TESTABLE  # its runs exist and fail their gates
    # no runs at other widths or training-set sizes: nothing was tried, so the cells read "not run"
    assert status["combinations.width"] == status["combinations.pool_size"] == F.NOT_RUN
    wide = [rec("pie_combos", 10, np.ones(2025), support=support, params={"width": 32})]
    found = F.combination_findings({"pie_combos": spread + wide})
    width = next(c for c in found.claims if c.key == "combinations.width").verdict
    assert width.status == F.NOT_TESTABLE and "(width 32)" in width.reasons[0]  # tried at width 32; it fails
    assert next(c for c in found.claims if c.key == "combinations.pool_size").verdict.status == F.NOT_RUN


def _jittered(support: np.ndarray, on: float) -> np.ndarray:
    """A pie-combinations distribution with ``on`` of each training combination's mass on it and the rest one x
    step to the right (what a model that places pies a fraction of a pixel off draws)."""
    grid = EXPERIMENTS["pie_combos"].grid
    d = np.zeros(int(np.prod(grid)))
    for i in support:
        size, x, y, red = np.unravel_index(int(i), grid)
        d[i] += on
        d[np.ravel_multi_index((size, min(x + 1, grid[1] - 1), y, red), grid)] += 1 - on
    return d


def test_combination_verdicts_that_the_grid_resolution_decides_are_not_testable():
    """Every training pie drawn on its cell 60% of the time and one x step off otherwise: counted exactly, precision
    0.5 at 10 combinations (not memorised); forgiving one step, 1.0 (memorised). The claim is then decided by the
    reading, not by the run: not testable, saying what each gives. A model on its cells reads the same both ways."""
    grid = EXPERIMENTS["pie_combos"].grid
    support = np.ravel_multi_index((np.arange(10) % 5, np.full(10, 2), np.arange(10) % 9, np.arange(10) // 5), grid)
    jitter = [rec("pie_combos", 10, _jittered(support, 0.6), support=support)]
    found = F.combination_findings({"pie_combos": jitter})
    memo = found.verdict("combinations.memorised")
    assert memo.verdict == F.NOT_TESTABLE
    assert memo.reasons == (f"the measurement's rules decide it: disagrees 0/1 counting exact combinations; agrees 1/1 "
                            f"with {F.TOLERANT_READING}",)
    assert "**1 of 5 get another answer**" in found.notes[-1] and "1.6 px at 64×64" in found.notes[-1]
    exact = [rec("pie_combos", 10, _jittered(support, 1.0), support=support)]
    found = F.combination_findings({"pie_combos": exact})
    assert found.verdict("combinations.memorised").label == "agrees 1/1"
    assert "no verdict gets another answer" in found.notes[-1]
    # a run that fails its gate counted exactly (30% on its cells) but would pass one step off: the note says so
    off = [rec("pie_combos", 10, _jittered(support, 0.3), support=support)]
    found = F.combination_findings({"pie_combos": off})
    assert found.verdict("combinations.memorised").verdict == F.NOT_TESTABLE
    assert "1 of the 1 runs that fail their gate would pass it (VAE 10, seed 0): the gates count exact" in \
        found.notes[-1]
    # three-digit numbers have no tolerant reading: nothing is added
    mnist = [rec("mnist_combos", 10, np.bincount(np.repeat(np.arange(10), 10), minlength=1000),
                 support=np.arange(10))]
    assert not any("grid step" in n for n in F.combination_findings({"mnist_combos": mnist}).notes)


def test_pie_claims_of_an_experiment_a_family_never_ran_read_not_run():
    """A family with red runs only (one failing): the size and location claims are "not run", not "not testable"
    because of the failing red run; the red claims still name it."""
    red = [rec("pie_red", v, gauss("pie_red", v, 0.05), model="pixelcnn") for v in (0.1, 0.5, 0.9)]
    red[1] = rec("pie_red", 0.5, gauss("pie_red", 0.5, 0.05), model="pixelcnn", invalid=0.9)  # fails its gate
    found = F.pie_findings({"pie_red": red, "pie_size": [], "pie_location": []})
    status = {c.key: c.verdict.status for c in found.claims}
    assert status["pie.size_larger"] == status["pie.location_symmetric"] == F.NOT_RUN
    assert status["pie.sharper_than_red"] == F.NOT_RUN
    weber = next(c for c in found.claims if c.key == "pie.red_weber").verdict
    assert weber.status == F.NOT_TESTABLE and "1 run fails its training-health gate (PixelCNN 0.5)" in weber.reasons
    size = [rec("pie_size", v, gauss("pie_size", v, 0.01), model="pixelcnn", invalid=0.9) for v in (0.5, 0.6)]
    found = F.pie_findings({"pie_red": red, "pie_size": size, "pie_location": []})
    larger = next(c for c in found.claims if c.key == "pie.size_larger").verdict
    # its own runs, named
    assert larger.status == F.NOT_TESTABLE and larger.reasons[0].endswith("(PixelCNN size 0.5, 0.6)")


# --- CLEVR pairs -----------------------------------------------------------------------------------------------

def test_pair_rules():
    assert F.rule_marginals({"marginal_tv": [0.02, 0.05]}) is True
    assert F.rule_marginals({"marginal_tv": [0.02, 0.3]}) is False
    assert F.rule_few_novel({"rare_novel": 0.1}) is True and F.rule_few_novel({"rare_novel": 0.6}) is False
    assert F.rule_even({"rare_novel": 0.8, "rare_even": 0.9}) is True
    assert F.rule_even({"rare_novel": 0.1, "rare_even": 0.9}) is False
