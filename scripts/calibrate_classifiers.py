#!/usr/bin/env python
"""Calibrate the refusal thresholds of the three-MNIST and CLEVR readers on generated-like renders.

For each reader, fresh renders (digit styles the classifier never saw; scene seeds never used in training) are
degraded as generated images are (``CALIBRATION_CONDITIONS`` of :mod:`probe_utils.features.mnist3` /
:mod:`probe_utils.features.clevr`: blur, faint ink, noise, washed colours, a generated-like mix), pooled in equal
shares, and read without a confidence threshold. A threshold is the **lowest** at which the images it accepts are
read right at least ``TARGET`` (95%) of the time, and at every higher threshold that accepts at least
``MIN_ACCEPTED`` images (so a dip of the accuracy curve never hides above it). Images the readers' fixed rules
refuse (NaN, grey mush, noise, blank, not two objects) are out of the pool: they are refused whatever the threshold.

three-MNIST: calibrated on the pooled set of each image size the experiments use (32 px: the ``ci``/``cpu``
presets; 64 px: ``colab``/``paper``); the threshold is the larger of the two, so both sizes meet the target. Two
rules are calibrated (``digit``: every digit's confidence at least the threshold; ``product``: the product of the
three at least it) and the one that refuses fewer images at the target is kept.
CLEVR: calibrated at 64 px (the CLEVR experiments' smallest size: ``threshold``, for images of 64 px or more) and at
32 px (``threshold_32``, for smaller images). ``count``: the density map's distance from a whole number; ``pair``
(two-object scenes counted as 2): the four winning shape and colour probabilities, ``min`` or ``product`` rule, the
one refusing fewer 64-px images kept.

The result, with how it was chosen (the set, the accuracy of accepted images and the share refused per condition
and size, the sha256 of the weights it belongs to), is written into ``probe_utils/data/<reader>_classifier.json``
under ``calibration``. Run it again after retraining a reader.

Usage: ``python scripts/calibrate_classifiers.py [mnist3|clevr|all] [--check]`` (``--check`` recomputes and
compares with the JSON without writing; about one minute for mnist3 and three for clevr on one idle CPU core).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probe_utils.features import clevr as clevrf
from probe_utils.features import mnist3 as mnistf
from probe_utils.features._common import data_file

TARGET = 0.95
MIN_ACCEPTED = 200
#: images per (condition, size) of the calibration sets
N_MNIST = 1000
N_CLEVR = 400
SEED_MNIST = 20_250
SEED_CLEVR = 30_250


def lowest_threshold(score: np.ndarray, correct: np.ndarray, target: float = TARGET,
                     min_accepted: int = MIN_ACCEPTED) -> float:
    """The lowest threshold ``t`` (images accepted when ``score >= t``) at which, and at every higher threshold that
    accepts at least ``min_accepted`` images, at least ``target`` of the accepted images are ``correct``; 0 when the
    whole set meets the target; 1 when no threshold accepting at least ``min_accepted`` images does. Rounded up to
    3 decimals."""
    score = np.asarray(score, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if score.shape != correct.shape or score.ndim != 1:
        raise ValueError(f"score and correct must be 1-d arrays of one length; got {score.shape}, {correct.shape}")
    if not len(score):
        return 1.0
    order = np.argsort(-score, kind="stable")
    s, c = score[order], correct[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each distinct score
    k = ends + 1                                          # images accepted at threshold s[end]
    acc = np.cumsum(c)[ends] / k
    judged = k >= min_accepted
    bad = np.flatnonzero((acc < target) & judged)
    if not len(bad):
        return 0.0
    good = np.flatnonzero(judged[:bad[0]])  # judged thresholds above the first failing one (all meet the target)
    if not len(good):
        return 1.0
    t = float(s[ends[good[-1]]])
    return min(1.0, math.ceil(t * 1000 - 1e-9) / 1000)


def summary(accepted: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """Images, share refused and accuracy of the accepted ones."""
    n = int(len(accepted))
    return {"images": n, "refused": round(float(1 - accepted.mean()), 4) if n else None,
            "accepted_accuracy": round(float(correct[accepted].mean()), 4) if accepted.any() else None}


def per_condition(accepted: np.ndarray, correct: np.ndarray, condition: np.ndarray, size: np.ndarray) -> list[dict]:
    rows = []
    for sz in np.unique(size):
        for cond in dict.fromkeys(condition.tolist()):
            sel = (condition == cond) & (size == sz)
            if sel.any():
                rows.append({"condition": cond, "size": int(sz), **summary(accepted[sel], correct[sel])})
    return rows


def sha256(name: str) -> str:
    return hashlib.sha256(data_file(name).read_bytes()).hexdigest()


# --- three-MNIST ------------------------------------------------------------------------------------------------

def calibrate_mnist3(n: int = N_MNIST, seed: int = SEED_MNIST, target: float = TARGET,
                     min_accepted: int = MIN_ACCEPTED) -> dict[str, Any]:
    """The ``calibration`` record of the three-MNIST reader (see the module docstring)."""
    t0 = time.time()
    sizes = (32, 64)
    r = mnistf.generated_like_readings(n, seed, sizes=sizes)
    conf, right = r["digit_confidence"], r["correct"]
    no_conf = mnistf._refuse(conf, r["no_digit"], r["background"], r["ink"], r["finite"], 0.0, "digit")[0].any(1)
    eligible = ~no_conf
    all_right = right.all(1)
    scores = {"digit": conf.min(1), "product": conf.prod(1)}
    compared = {}
    for rule, score in scores.items():
        per_size = {int(sz): lowest_threshold(score[eligible & (r["size"] == sz)],
                                              all_right[eligible & (r["size"] == sz)],
                                              target, min_accepted) for sz in sizes}
        t = max(per_size.values())
        accepted = eligible & (score >= t)
        compared[rule] = {"threshold": t, "threshold_per_size": per_size, **summary(accepted, all_right)}
    rule = min(compared, key=lambda k: (compared[k]["refused"], k != "digit"))
    t = compared[rule]["threshold"]
    accepted = eligible & (scores[rule] >= t)
    # clean renders of the same styles and sizes, for comparison (not in the pool)
    clean = mnistf.generated_like_readings(n // 2, seed + 7, sizes=sizes, conditions=("clean",))
    c_refused = mnistf._refuse(clean["digit_confidence"], clean["no_digit"], clean["background"], clean["ink"],
                               clean["finite"], t, rule)[0].any(1)
    rows = per_condition(accepted, all_right, r["condition"], r["size"])
    rows += per_condition(~c_refused, clean["correct"].all(1), clean["condition"], clean["size"])
    return {
        "rule": rule,
        "threshold": t,
        "target_accuracy": target,
        "chosen_as": (f"the lowest threshold at which the accepted images of the pooled generated-like set of each "
                      f"size ({', '.join(map(str, sizes))} px) are read right (all three digits) at least {target:.0%} "
                      f"of the time, and at every higher threshold accepting at least {min_accepted} images (the "
                      f"largest of the per-size thresholds); rule '{rule}' refuses fewer images at the target than "
                      f"the other (rules_compared)"),
        "set": {"conditions": list(mnistf.CALIBRATION_CONDITIONS), "sizes": list(sizes), "images_per_condition": n,
                "images": int(len(all_right)), "seed": seed, "digit_styles": "heldout (never seen in training)",
                "refused_by_image_rules": round(float(no_conf.mean()), 4)},
        "pooled": summary(accepted, all_right),
        "pooled_per_size": {int(sz): summary(accepted[r["size"] == sz], all_right[r["size"] == sz]) for sz in sizes},
        "rules_compared": compared,
        "per_condition": rows,
        "image_rules": {"background_max": mnistf.BACKGROUND_MAX, "ink_min": mnistf.INK_MIN},
        "weights_sha256": sha256(mnistf.WEIGHTS_FILE),
        "torch": torch.__version__,
        "seconds": round(time.time() - t0, 1),
    }


# --- CLEVR ------------------------------------------------------------------------------------------------------

def calibrate_clevr(n: int = N_CLEVR, seed: int = SEED_CLEVR, target: float = TARGET,
                    min_accepted: int = MIN_ACCEPTED) -> dict[str, Any]:
    """The ``calibration`` record of the CLEVR reader: ``count`` and ``pair`` thresholds (see the module docstring).
    ``threshold`` is calibrated at 64 px (and applies to images of 64 px or more), ``threshold_32`` at 32 px (for
    smaller images, where the reader is weaker)."""
    t0 = time.time()
    out: dict[str, Any] = {"target_accuracy": target, "calibrated_at": 64}
    r = clevrf.generated_like_readings(n, seed, sizes=(64, 32))
    sizes = {64: r["size"] == 64, 32: r["size"] == 32}
    key = {64: "threshold", 32: "threshold_32"}
    # count: distance of the density sum from a whole number, among images the fixed rules accept
    eligible = r["count_rule_ok"]
    ct = {sz: lowest_threshold(r["count_score"][eligible & at], r["count_correct"][eligible & at], target,
                               min_accepted) for sz, at in sizes.items()}
    accepted = eligible & (r["count_score"] >= np.where(sizes[64], ct[64], ct[32]))
    out["count"] = {
        **{key[sz]: t for sz, t in ct.items()},
        "score": "1 - 2 * |density sum - nearest whole number| (1: a whole number, 0: half-way)",
        "chosen_as": (f"for each size, the lowest threshold at which the accepted images of the pooled "
                      f"generated-like set of that size are counted right at least {target:.0%} of the time, and at "
                      f"every higher threshold accepting at least {min_accepted} images"),
        **{f"pooled_{sz}": summary(accepted[at], r["count_correct"][at]) for sz, at in sizes.items()},
        **{f"refused_by_image_rules_{sz}": round(float(1 - eligible[at].mean()), 4) for sz, at in sizes.items()},
        "per_condition": per_condition(accepted, r["count_correct"], r["condition"], r["size"]),
    }
    # pairs: two-object scenes whose count reads 2 (at the count thresholds just chosen)
    ps = r["pair_scene"]
    pair_ok = ps & accepted & (r["count_read"] == 2)

    def pair_thresholds(rule: str) -> dict[int, float]:
        score = r[f"pair_score_{rule}"]
        return {sz: lowest_threshold(score[pair_ok & at], r["pair_correct"][pair_ok & at], target, min_accepted)
                for sz, at in sizes.items()}

    compared = {}
    for rule in clevrf.PAIR_RULES:
        pt = pair_thresholds(rule)
        acc = pair_ok & (r[f"pair_score_{rule}"] >= pt[64])
        compared[rule] = {"threshold": pt[64], "threshold_32": pt[32],
                          **summary(acc[ps & sizes[64]], r["pair_correct"][ps & sizes[64]])}
    rule = min(compared, key=lambda k: (compared[k]["refused"], k != "min"))
    pt = pair_thresholds(rule)
    acc = pair_ok & (r[f"pair_score_{rule}"] >= np.where(sizes[64], pt[64], pt[32]))
    out["pair"] = {
        "rule": rule,
        **{key[sz]: t for sz, t in pt.items()},
        "chosen_as": (f"for each size, the lowest threshold at which the accepted two-object images (count read as "
                      f"2) of the pooled generated-like set of that size have both shapes and both colours right at "
                      f"least {target:.0%} of the time, and at every higher threshold accepting at least "
                      f"{min_accepted} images; rule '{rule}' refuses fewer 64-px images at the target than the other "
                      f"(rules_compared)"),
        **{f"pooled_{sz}": summary(acc[ps & at], r["pair_correct"][ps & at]) for sz, at in sizes.items()},
        "rules_compared": compared,
        "per_condition": per_condition(acc[ps], r["pair_correct"][ps], r["condition"][ps], r["size"][ps]),
    }
    out["set"] = {"conditions": list(clevrf.CALIBRATION_CONDITIONS), "sizes": [64, 32],
                  "scenes_per_condition": {"count (1-10 objects)": n, "pair (two objects)": n},
                  "seed": seed, "renders": "fresh scenes (seeds never used in training), all shapes, colours, "
                                            "sizes and materials"}
    out["image_rules"] = clevrf.image_rules()
    out["weights_sha256"] = sha256(clevrf.WEIGHTS_FILE)
    out["torch"] = torch.__version__
    out["seconds"] = round(time.time() - t0, 1)
    return out


READERS = {"mnist3": (mnistf, calibrate_mnist3), "clevr": (clevrf, calibrate_clevr)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reader", nargs="?", default="all", choices=[*READERS, "all"])
    ap.add_argument("--check", action="store_true", help="recompute and compare with the JSON; write nothing")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    status = 0
    for name in (READERS if args.reader == "all" else [args.reader]):
        module, calibrate = READERS[name]
        record = calibrate()
        path = Path(str(data_file(module.INFO_FILE)))
        info = json.loads(path.read_text())
        if args.check:
            old = info.get("calibration", {})
            if name == "mnist3":
                new_t, old_t = [record["threshold"]], [old.get("threshold")]
            else:
                pairs = [(k, t) for k in ("count", "pair") for t in ("threshold", "threshold_32")]
                new_t = [record[k][t] for k, t in pairs]
                old_t = [old.get(k, {}).get(t) for k, t in pairs]
            same = new_t == old_t
            print(f"{name}: thresholds recomputed {new_t}, in the JSON {old_t}: {'same' if same else 'DIFFERENT'}")
            status |= 0 if same else 1
            continue
        info["calibration"] = record
        path.write_text(json.dumps(info, indent=2) + "\n")
        print(json.dumps(record, indent=2))
        print(f"wrote the calibration into {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
