"""The differences page (book/differences.md) states what the code does: its per-preset numbers come from
``PRESETS`` and the ``released`` recipe trains with the released settings stored in ``released_recipe.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from probe_utils import models as models_mod
from probe_utils.experiments import PRESETS, RECIPES, recipe_settings

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "book" / "differences.md"
RELEASED = REPO / "probe_utils" / "data" / "released_recipe.json"

#: rows of the page whose "ours" cell gives one number per preset, and the number each preset sets
PRESET_ROWS = {
    "Images per setting": lambda p: p.pool_size,
    "Iterations": lambda p: p.steps,
    "Batch size": lambda p: p.batch_size,
    "Critic steps": lambda p: int(recipe_settings(p.recipe, "wgan_gp").get("n_critic", p.n_critic)),
    "Which samples are measured": lambda p: p.final_samples,
}


def _cells(text: str, what: str) -> list[str]:
    rows = [line for line in text.splitlines() if line.startswith(f"| {what} |")]
    assert len(rows) == 1, f"the differences page should have one row {what!r}, has {len(rows)}"
    return [c.strip() for c in rows[0].strip().strip("|").split(" | ")]


def stated_per_preset(cell: str) -> dict[str, int]:
    """``"32 (`ci`), 64 (`cpu`, `colab`)"`` -> ``{"ci": 32, "cpu": 64, "colab": 64}``: every number followed by a
    parenthesis that names presets."""
    out: dict[str, int] = {}
    for number, inside in re.findall(r"(\d[\d,]*) \(([^()]*)\)", cell):
        for name in re.findall(r"`([^`]+)`", inside):
            if name in PRESETS:
                out[name] = int(number.replace(",", ""))
    return out


def test_stated_per_preset_reads_each_number_against_the_presets_it_names() -> None:
    cell = "at most 40 (`ci`), 30,000 (`cpu`, or 15 CPU-minutes), 6,000 (`colab`, `gpu20k`) (`experiments.py`)"
    assert stated_per_preset(cell) == {"ci": 40, "cpu": 30000, "colab": 6000, "gpu20k": 6000}


@pytest.mark.parametrize("what", sorted(PRESET_ROWS))
def test_the_page_states_every_preset_s_number_as_the_presets_set_it(what: str) -> None:
    ours = _cells(PAGE.read_text(), what)[3]
    want = {name: PRESET_ROWS[what](pre) for name, pre in PRESETS.items()}
    assert stated_per_preset(ours) == want, f"row {what!r} of book/differences.md: 'ours' should state {want}"


def test_no_row_says_the_recipe_is_still_being_searched() -> None:
    """The `cpu` recipe has been chosen (book/recipe_search): "our choice" says what it uses, not "open"."""
    text = PAGE.read_text()
    assert "being measured" not in text and "open with the recipe" not in text


#: settings in which the `released` recipe keeps the paper's Table 1 rather than the released code's flag defaults
#: (the page's "Fully connected families" row says why)
TABLE_1 = {("vae_fc", "lr")}


@pytest.mark.parametrize("family", sorted(RECIPES["released"]))
def test_the_released_recipe_trains_with_the_released_settings(family: str) -> None:
    data = json.loads(RELEASED.read_text())["families"][family]
    got = recipe_settings("released", family)
    cls = models_mod.FAMILIES[family]
    checks = {"lr": (got.get("lr", cls.lr), data["lr"]["value"])}
    schedule = data["lr_schedule"]["value"]
    checks["lr_halve_every"] = (got.get("lr_halve_every"), schedule.get("every") if schedule["type"] == "step"
                                else None)
    if "critic_steps" in data:
        checks["n_critic"] = (got.get("n_critic"), data["critic_steps"]["value"])
    if "kl_schedule" in data:
        checks["kl_warmup"] = (got.get("kl_warmup"), data["kl_schedule"]["value"]["tau"])
        checks["sigma_floor"] = (got.get("sigma_floor"), data["encoder_sigma"]["value"]["floor"])
        checks["recon"] = (got.get("recon"), "l2l1")
    for key, (ours, released) in checks.items():
        if (family, key) in TABLE_1:
            assert ours != released, f"{family} {key}: now equal to the released value; drop it from TABLE_1"
            continue
        assert ours == pytest.approx(released) if isinstance(released, float) else ours == released, (
            f"released recipe, {family}: {key} = {ours!r}, the released code's is {released!r}")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def test_the_recipe_search_numbers_are_the_stored_entries():
    """Every share the page quotes from the recipe search is the named entry's stored result (the final 2,000
    samples' exactly-one share, or blank share), and the long runs' shares at the `cpu` budget and at their end."""
    from probe_utils import findings as F

    runs = {r["name"]: r for r in F.recipe_search_results()}
    exact = {n: _pct(r["final"]["exact"]) for n, r in runs.items()}
    text = re.sub(r"\s+", " ", PAGE.read_text())
    quotes = [
        "it drew {} one-dot samples against {} with batch norm after every layer".format(
            exact["wgan_rel_bf16"], exact["wgan_gbn_all_bf16"]),
        "batch statistics for the VAE ({} one-dot samples against {} with running statistics".format(
            exact["vae_bce_batchbn"], exact["vae_bce_lr1e-3"]),
        "running statistics for WGAN-GP ({} against {}:".format(exact["wgan_rel_bf16"], exact["wgan_rel_bf16_batchbn"]),
        "WGAN-GP 2e-4 ({}, against {} at 5e-4 and {} at 1e-4".format(
            exact["wgan_rel_bf16"], exact["wgan_rel_lr5e-4"], exact["wgan_c5_lr1e-4"]),
        "1 critic step drew {} one-dot samples, 2 steps {}, 5 steps (lr 1e-4, no batch reuse) {}".format(
            exact["wgan_c1_bf16"], exact["wgan_rel_bf16"], exact["wgan_c5_lr1e-4"]),
        "({} one-dot samples, {} blank after 10 CPU-minutes, `vae_l2l1_lr1e-3`), with cross-entropy {}".format(
            exact["vae_l2l1_lr1e-3"], _pct(runs["vae_l2l1_lr1e-3"]["final"]["blank"]), exact["vae_bce_lr1e-3"]),
        "β = 2 drew more one-dot samples in the search ({} against {}; β = 0.5: {}, β = 4: {})".format(
            exact["vae_beta2_batchbn"], exact["vae_bce_batchbn"], exact["vae_beta0.5_batchbn"],
            exact["vae_beta4_batchbn"]),
        "{:.1f} iterations per second of one core against {:.1f} in float32 in the search, and no fewer one-dot "
        "samples ({} against {}, at lr 2e-4 and 5e-4".format(
            runs["wgan_rel_bf16"]["steps"] / (60 * runs["wgan_rel_bf16"]["minutes"]),
            runs["wgan_rel_lr5e-4"]["steps"] / (60 * runs["wgan_rel_lr5e-4"]["minutes"]),
            exact["wgan_rel_bf16"], exact["wgan_rel_lr5e-4"]),
    ]
    budget = 60 * float(PRESETS["cpu"].max_minutes)
    long = {r["model"]: r for r in runs.values() if r["minutes"] * 60 > budget}
    quotes.append("moved the one-dot share from " + ", ".join(
        f"{_pct(F._share_by(long[m]['probes'], budget))} to {exact[long[m]['name']]} ({label})" for m, label in (
            ("vae", "VAE"), ("wgan_gp", "WGAN-GP"), ("vae_fc", "fully connected VAE"))) + " and {} to {} ({})".format(
        _pct(F._share_by(long["wgan_gp_fc"]["probes"], budget)), exact["wgan_fc_cpu_long4x"],
        "fully connected WGAN-GP"))
    for quote in quotes:
        assert quote in text, f"the differences page should say {quote!r} (the recipe search's stored entries)"
