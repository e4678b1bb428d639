"""Findings and the scorecard as readers see them: HTML tables (no raw Markdown pipes), verdict classes, links from
each scorecard cell to the chapter section that decides it, counts per family, and the preset banner generated from
PRESETS."""

from __future__ import annotations

import numpy as np
import pytest

from probe_utils import findings as F
from probe_utils.experiments import PRESETS
from probe_utils.params import ParameterError
from test_findings_rules import counts, rec


class FakeStore:
    """The two calls the scorecard makes on a store."""

    def __init__(self, records: list[dict]) -> None:
        self.recs = records

    def records(self, experiment: str | None = None, preset: str | None = None):
        return (r for r in self.recs if r["experiment"] == experiment and r["preset"] == preset)


def _numerosity() -> list[dict]:
    good = [rec("numerosity", k, counts({k - 1: 0.2, k: 0.5, k + 1: 0.3}), model="vae") for k in (2, 5)]
    blank = [rec("numerosity", k, counts({0: 1.0}), model="wgan_gp") for k in (2, 5)]
    return good + blank


def test_findings_render_as_html_with_an_anchor():
    found = F.numerosity_findings(_numerosity())
    page = found._repr_html_()
    assert page.startswith('<div class="findings" id="findings-numerosity">')
    assert "<table" in page and "|---|" not in page and "verdict-not-testable" in page
    assert "| the paper says |" in str(found)  # the Markdown form, for tests and text output
    assert "2 of 4 runs fail their training-health gate" in str(found)


def test_tables_render_as_html():
    table = F.summary_table(_numerosity())
    assert "<td>" in table._repr_html_() and "|---|" not in table._repr_html_()
    assert "1 of 1" in str(table) and "0 of 1" in str(table)  # seeds passing the gate per setting


def test_summary_table_rows_are_made_of_the_passing_seeds():
    """A setting with a passing and a failing seed: the table's numbers are the passing seed's (as the figures and
    verdicts), and the gate column counts both."""
    good = rec("numerosity", 3, counts({3: 1.0}), model="vae", seed=0)
    blank = rec("numerosity", 3, counts({0: 1.0}), model="vae", seed=1)  # all zero dots: fails the count gate
    table = F.summary_table([good, blank])
    header = [c.strip() for c in str(table).splitlines()[0].split("|")[1:-1]]
    [row] = [[c.strip() for c in line.split("|")[1:-1]] for line in str(table).splitlines()[2:]]
    cell = dict(zip(header, row))
    assert cell["seeds"] == "1" and cell["seeds passing the gate"] == "1 of 2" and cell["mean"] == "3.00"


def test_scorecard_matrix_links_each_cell_and_counts_verdicts():
    card = F.scorecard("cpu", store=FakeStore(_numerosity()))
    assert card.families == ["wgan_gp", "vae"]
    html = card._repr_html_()
    assert 'href="01_numerosity.html#findings-numerosity"' in html
    assert "verdict-not-testable" in html and "verdict-agrees" in html
    key = "numerosity.not_always_exact"
    s = card.sections[0]
    assert s.verdict("vae", key).label == "agrees 2/2" and s.verdict("wgan_gp", key).verdict == F.NOT_TESTABLE
    assert card.sections[1].verdict("vae", "pie.red_centred").reasons == ("not run at the `cpu` preset",)
    text = str(card.counts())
    n_claims = len(card.cells())
    assert "| all families |" in text
    per_family = {row[0].text: [int(c.text) for c in row[1:]] for row in card.counts().rows}
    assert sum(per_family["VAE"]) == n_claims and sum(per_family["all families"]) == 2 * n_claims
    assert "verdict-agrees" in card.details()._repr_html_()


def test_nothing_tried_reads_not_run_or_not_yet_never_not_testable():
    """"Not testable" means runs that exist and could not decide; a claim no run was made for says "not run", one
    whose runs are still planned says "not yet", and the counts keep them apart."""
    assert F.judge([]).status == F.NOT_RUN and F.judge([]).label == "not run"
    assert "not testable" not in F.judge([]).cell().text
    failed = F.judge([], ["2 of 2 runs fail their training-health gate"])
    assert failed.status == F.NOT_TESTABLE and "not testable at this scale" in failed.cell().text
    assert F.judge([None, None]).status == F.NOT_TESTABLE  # runs that were scored but undecided
    assert F.judge([True]).status == F.AGREES
    card = F.scorecard("cpu", store=FakeStore(_numerosity()))
    absent = card.sections[1].verdict("vae", "pie.red_centred")
    assert absent.status == F.NOT_RUN and absent.cell("x.html").css == "verdict-not-run"
    pending = F.ScoredSection(card.sections[0].section, "cpu", {}, {}, card.sections[0].claims, ["vae"])
    assert pending.verdict("vae", "numerosity.not_always_exact").status == F.NOT_YET
    assert list(card.counts().columns) == ["family", *F.STATUSES]
    per_family = {row[0].text if hasattr(row[0], "text") else row[0]: [int(c.text) for c in row[1:]]
                  for row in card.counts().rows}
    not_run = F.STATUSES.index(F.NOT_RUN)
    assert per_family["VAE"][not_run] == len(card.cells()) - len(card.sections[0].claims)  # every other section
    red_row = next(line for line in str(card.matrix()).splitlines() if "Red: the response is centred" in line)
    assert "not run" in red_row and "not testable" not in red_row and red_row.endswith("| 2 not run |")
    shows = F.Claim("k", "A claim.", "in 0 of 0 settings", F.judge([])).shows
    assert shows == "no runs for this claim at this preset"


def test_scorecard_marks_families_beyond_the_paper():
    recs = _numerosity() + [dict(r, model=m) for r in _numerosity()[:2] for m in ("diffusion", "pixelcnn")]
    card = F.scorecard("cpu", store=FakeStore(recs))
    header = card.matrix().columns
    assert "Diffusion (beyond the paper)" in header
    assert "PixelCNN" in header and "VAE" in header and not any("PixelCNN (" in h or "VAE (" in h for h in header)
    assert "Diffusion (beyond the paper)" in [row[0].text if hasattr(row[0], "text") else row[0]
                                              for row in card.counts().rows]
    assert F.family_header("my_own_model") == "my_own_model (beyond the paper)"


def test_details_say_once_when_no_claim_of_a_family_can_be_scored():
    card = F.scorecard("cpu", store=FakeStore(_numerosity()))
    html = card.details()._repr_html_()
    wgan = html[html.index('id="findings-numerosity-wgan_gp"'):html.index('id="findings-numerosity-vae"')]
    assert "None of its" in wgan and "can be scored" in wgan and "<table" not in wgan  # all blank: no table
    vae = html[html.index('id="findings-numerosity-vae"'):]
    assert "<table" in vae and "verdict-agrees" in vae  # a family with scored claims keeps its table
    assert "None of its" in str(card.details())


def test_untestable_family_names_each_claims_own_reasons_with_the_claim():
    gate = "3 runs fail their training-health gate"
    claims = [F.Claim("a", "Claim one.", "", F.Verdict(F.NOT_TESTABLE, reasons=(gate, "agrees 3/3 read another way"))),
              F.Claim("b", "Claim two.", "", F.Verdict(F.NOT_TESTABLE, reasons=(gate,))),
              F.Claim("c", "Claim three.", "", F.Verdict(F.NOT_TESTABLE, reasons=(gate, "partly 1/3 read another way")))]
    line = F.Details._untestable(F.Findings("x", claims), "vae", False)
    assert line.count(gate) == 1  # the shared reason once
    assert "Claim one: agrees 3/3 read another way" in line and "Claim three: partly 1/3 read another way" in line
    assert "Claim two" not in line  # a claim with nothing of its own is not listed
    alone = F.Details._untestable(F.Findings("x", [F.Claim("a", "A.", "", F.Verdict(F.NOT_TESTABLE))]), "vae", False)
    assert "no run passed its gate" in alone and "By claim" not in alone


def test_gate_note_names_each_setting_once_with_its_seeds():
    blank = [rec("numerosity", 3, counts({0: 1.0}), model="wgan_gp", seed=s) for s in (0, 1, 2)]
    note = F.numerosity_findings(blank + [rec("numerosity", 5, counts({0: 1.0}), model="wgan_gp")]).notes
    text = " ".join(note)
    assert "WGAN-GP 3, seeds 0, 1, 2:" in text and "WGAN-GP 5, seed 0:" in text and text.count("WGAN-GP 3") == 1


def test_scorecard_rejects_an_unknown_preset():
    with pytest.raises(ParameterError, match="parameter 'preset' must be one of"):
        F.scorecard("fast", store=FakeStore([]))


def test_preset_banner_is_generated_from_presets():
    for name, p in PRESETS.items():
        text = F.preset_banner(name)
        assert f"{p.steps:,} generator iterations" in text and f"width {p.width}" in text
    assert "64×64 images" in F.preset_banner("ci", ["clevr_pairs_4x4"])
    # experiments of one chapter at different sizes: the banner says which runs at which
    both = str(F.preset_banner("cpu", ["clevr_numerosity", "clevr_pairs_4x4", "clevr_pairs_9x9"]))
    assert "32×32 images (`clevr_numerosity`) and 64×64 images (`clevr_pairs_4x4`, `clevr_pairs_9x9`)" in both
    one = str(F.preset_banner("cpu", ["numerosity"]))
    assert one.count("32×32 images") == 1 and "images (`" not in one
    with pytest.raises(ParameterError, match="parameter 'preset'"):
        F.preset_banner("fast")


def test_gate_report_lists_every_run():
    table = F.gate_report(_numerosity())
    assert len(table) == 4 and str(table).count("| fails |") == 2


def test_verdict_cell_classes():
    for verdict in F.VERDICTS:
        cell = F.Verdict(verdict, 1, 2).cell("x.html#a")
        assert cell.css == "verdict-" + verdict.replace(" ", "-") and 'href="x.html#a"' in cell.html
    assert np.isnan(F._nanmean([float("nan")]))


def test_recipe_search_summary_says_when_no_entry_reaches_the_target() -> None:
    def entry(name: str, exact: list[float], minutes: float = 10) -> dict:
        probes = [{"wall_s": 60.0 * minutes * (i + 1) / len(exact), "exact": e} for i, e in enumerate(exact)]
        return {"name": name, "model": "vae", "count": 1, "minutes": minutes, "steps": 1000, "probes": probes,
                "final": {"exact": exact[-1], "blank": 0.1}}

    flat = entry("flat", [0.5, 0.7, 0.7, 0.7, 0.7, 0.7])
    text = F.recipe_search_summary([flat], target=0.9, budget_minutes=15)
    assert "1 entry, `flat`, final exactly-k share 70.0%" in text and "it did not reach the target of 90%" in text
    assert "its budget the share moved by +0.0%." in text and "entries" not in text  # one entry: singular
    short = entry("short", [0.5, 0.6, 0.7])  # too few probes to compare thirds: only `flat` is read
    text = F.recipe_search_summary([flat, short], target=0.9, budget_minutes=15)
    assert "each entry's budget the share moved by +0.0% to +0.0%" in text and "its budget" not in text
    text = F.recipe_search_summary([flat, flat], target=0.9, budget_minutes=15)
    assert "2 entries, final exactly-k shares 70.0%–70.0%" in text and "no entry reached the target of 90%" in text
    good = entry("good", [0.5, 0.8, 0.85, 0.9, 0.92, 0.95], minutes=60)
    text = F.recipe_search_summary([flat, good], target=0.9, budget_minutes=15)
    assert "reached the target (90%) in 1 of 2 entries" in text
    # the long run's share at the preset's 15 minutes is the probe at 10 min (0.5), at the end 0.95
    assert "50.0% exactly 1 at the preset's 15 min, 95.0% at the end" in text


def test_recipe_checks_read_the_chapters_runs_per_seed_and_can_fail():
    """The recipe's four checks on stored runs: a seed that meets a check and one that misses it, the size variants
    of the combinations left out, seeds not stored named, and the one-dot target taken from the page."""
    from test_findings_rules import gauss

    pre = PRESETS["cpu"]
    one = [rec("numerosity", 1, counts({0: 0.04, 1: 0.96}), model="vae", seed=0),
           rec("numerosity", 1, counts({0: 0.3, 1: 0.7}), model="vae", seed=1),
           rec("numerosity", 1, counts({1: 0.95, 2: 0.05}), model="wgan_gp", seed=0, invalid=0.2),
           rec("numerosity", 1, counts({0: 0.10025, 1: 0.89975}), model="wgan_gp", seed=1)]
    three = [rec("numerosity", 3, counts({3: 0.4, 4: 0.35, 2: 0.25}), model="vae", seed=s) for s in (0, 1, 2)]
    red = [rec("pie_red", 0.3, gauss("pie_red", 0.3, 0.05), model="vae", seed=0),
           rec("pie_red", 0.3, gauss("pie_red", 0.42, 0.05), model="vae", seed=1),
           rec("pie_red", 0.3, gauss("pie_red", 0.2497, 0.05), model="vae", seed=2)]
    on, off = np.zeros(2025), np.zeros(2025)
    on[:10], off[:10], off[100:110] = 0.1, 0.02, 0.08
    combos = [rec("pie_combos", 10, on, model="vae", support=range(10)),
              rec("pie_combos", 10, off, model="vae", seed=1, support=range(10)),
              rec("pie_combos", 10, off, model="vae", seed=2, support=range(10),
                  params={"width": pre.width * 2})]  # another network width: not the recipe's run
    table = F.recipe_checks("cpu", store=FakeStore(one + three + red + combos))
    rows = {(r[0].text.split(":")[0], r[1].text): [c.text for c in r[2:]] for r in table.rows}
    assert rows["trained on 1 dot", "VAE"] == ["96%", "70%", "not stored", "no (met by 1 of 2 stored seeds)"]
    assert rows["trained on 1 dot", "WGAN-GP"][0] == "76%"  # of all samples: a fifth were not countable
    assert rows["trained on 1 dot", "WGAN-GP"][1] == "89.98%"  # not "90%", which would read as meeting it
    assert rows["trained on 3 dots", "VAE"] == ["mode 3 (40%)"] * 3 + ["yes (met by 3 of 3 stored seeds)"]
    assert rows["pie red at 0.3", "VAE"][1].startswith("mean 0.42") and rows["pie red at 0.3", "VAE"][3] == \
        "no (met by 1 of 3 stored seeds)"
    # 0.05 off reads as within the tolerance; the mean 0.2497 misses it, so it shows the digit that says so
    assert rows["pie red at 0.3", "VAE"][2].startswith("mean 0.2497, ")
    assert rows["10 pie combinations", "VAE"] == ["100% (100% measurable)", "20% (100% measurable)", "not stored",
                                                  "no (met by 1 of 2 stored seeds)"]
    lenient = F.recipe_checks("cpu", store=FakeStore(one), target=0.7)
    assert [c.text for c in lenient.rows[0][1:]] == ["WGAN-GP", "76%", "90%", "not stored",
                                                     "so far (met by 2 of 2 stored seeds)"]
    only = F.recipe_checks("cpu", store=FakeStore(one[:1] + combos[1:2]))
    assert only.rows[0][-1].text == "so far (met by 1 of 1 stored seed)"  # one seed: singular
    assert only.rows[-1][-1].text == "no (met by 0 of 1 stored seed)"
    assert lenient.rows[1][0].text.startswith("trained on 1 dot: at least 70% of all samples")
    with pytest.raises(ParameterError, match="'target'"):
        F.recipe_checks("cpu", store=FakeStore(one), target=90)


def test_preset_banner_names_the_families_the_book_left_out(monkeypatch):
    monkeypatch.delenv("PROBE_BOOK_PENDING", raising=False)
    assert "Not shown yet" not in F.preset_banner("cpu")
    monkeypatch.setenv("PROBE_BOOK_PENDING", "vae,diffusion")
    banner = F.preset_banner("cpu")
    assert "Not shown yet: VAE, Diffusion." in banner and "`cpu` preset" in banner
    assert "not shown yet:**" not in banner  # every seed shown
    monkeypatch.delenv("PROBE_BOOK_PENDING")
    monkeypatch.setenv("PROBE_BOOK_PENDING_SEEDS", "1,2")
    banner = F.preset_banner("cpu")
    assert "**Seeds 1, 2 not shown yet:**" in banner and "Not shown yet" not in banner
    assert "with one seed, a difference is weighed against the sampling noise" in banner
    monkeypatch.setenv("PROBE_BOOK_PENDING_SEEDS", "2")  # seeds 0 and 1 shown: not "with one seed"
    banner = F.preset_banner("cpu")
    assert "**Seed 2 not shown yet:**" in banner and "one seed" not in banner
    assert "with 2 seeds the seed-to-seed spread rests on 2 runs per setting" in banner and "(t = 12.7)" in banner


def test_auto_scorecard_scores_what_each_chapter_page_shows(monkeypatch, tmp_path):
    """With ``auto``, a section is scored from its chapter's records as the book builds the page (its preset,
    families and seeds): a stored record the page does not show is not scored, and a family whose runs are not all
    stored is named as such, not as "not run"."""
    from probe_utils import build, sweep
    from probe_utils.store import Store

    shown = {1: counts({1: 0.9, 2: 0.1}), 3: counts({2: 0.2, 3: 0.5, 4: 0.3}), 5: counts({4: 0.3, 5: 0.4, 6: 0.3}),
             8: counts({7: 0.3, 8: 0.4, 9: 0.3})}
    monkeypatch.setattr(build, "chapter_settings", lambda stem, store=None: (
        ("cpu", {"seeds": [0], "models": ["vae"]}, ["wgan_gp"]) if stem == "01_numerosity" else ("ci", {}, [])))
    monkeypatch.setattr(sweep, "_stored", lambda store, t: rec("numerosity", t.value, shown[t.value], model=t.model,
                                                               seed=t.seed) if t.model == "vae" else None)
    card = F.scorecard("auto", store=Store(tmp_path / "results"))
    s = card.sections[0]
    assert s.preset == "cpu" and s.runs == {"vae": 4}          # seed 0 of 1, 3, 5, 8: nothing else
    assert "wgan_gp" in card.families and s.pending == ["wgan_gp"]
    reason = s.verdict("wgan_gp", "numerosity.not_always_exact").reasons
    assert reason == ("its runs at the `cpu` preset are not all stored yet",)
    assert card.sections[1].preset == "ci"


def test_a_family_beyond_the_paper_never_moves_a_verdict_on_the_paper():
    """Diffusion runs that draw fewer dots than trained sit beside VAE runs that draw more: the paper's claim ("biased
    towards more") is judged on the VAE alone, and diffusion gets a table of its own after it."""
    up = counts({2: 0.1, 3: 0.5, 4: 0.4})
    down = counts({2: 0.4, 3: 0.5, 4: 0.1})
    vae = [rec("numerosity", 3, up, model="vae", seed=s) for s in (0, 1, 2)]
    diffusion = [rec("numerosity", 3, down, model="diffusion", seed=s) for s in (0, 1, 2)]
    alone = F.numerosity_findings(vae)
    both = F.numerosity_findings(vae + diffusion)
    key = "numerosity.more"
    assert both.verdict(key).label == alone.verdict(key).label == "agrees 1/1"
    assert both.beyond is not None and both.beyond.verdict(key).verdict == F.DISAGREES
    assert both.beyond.families == ["diffusion"] and both.families == ["vae"]
    page = both._repr_html_()
    assert 'id="findings-numerosity"' in page and 'id="findings-numerosity-beyond"' in page
    assert page.index("Beyond the paper") > page.index('id="findings-numerosity"')
    assert page.count("Measured at the <code>cpu</code> preset.") == 1
    assert "Diffusion on 3" not in " ".join(both.notes) and "Diffusion on 3" in " ".join(both.beyond.notes)
    # one kind of family only: one set of findings, as before
    assert F.numerosity_findings(diffusion).beyond is None and F.numerosity_findings(vae).beyond is None
    # chapters whose findings take records by experiment split the same way, keeping their anchor
    pie = F.pie_findings({"pie_red": [], "pie_size": [], "pie_location": []}, anchor="x")
    assert pie.anchor == "x" and pie.beyond is None


def test_the_gate_note_and_the_more_verdict_say_which_way_the_left_out_runs_lean():
    over = [rec("numerosity", 3, counts({3: 0.3, 4: 0.4, 5: 0.3}), model="vae", seed=s) for s in (0, 1)]
    under = [rec("numerosity", 5, counts({4: 0.5, 5: 0.3, 6: 0.2}), model="pixelcnn")]
    fine = [rec("numerosity", 3, counts({2: 0.2, 3: 0.5, 4: 0.3}), model="wgan_gp", seed=1)]
    blank = [rec("numerosity", 3, counts({0: 0.6, 3: 0.4}), model="wgan_gp")]  # a failed model, not a bias
    text = " ".join(F.numerosity_findings(over + under + fine + blank).notes)
    lean = text[text.index("Which way"):]
    assert "3 runs fail the gate only" in lean and "VAE 2 (2 more)" in lean and "PixelCNN 1 (1 fewer)" in lean
    assert "WGAN-GP" not in lean.split("than trained:")[1].split("Scored")[0]
    assert not F.mode_gate_note([])
    for alone in (fine, blank):
        assert "Which way" not in " ".join(F.numerosity_findings(alone).notes)
    # the "more" verdict itself carries them (a scorecard cell's reasons), by side; the other claims do not
    found = F.numerosity_findings(over + under + fine + blank)
    why = found.verdict("numerosity.more").reasons[-1]
    assert why.startswith("not in this verdict: the gate leaves out runs whose most frequent count is another")
    assert "2 runs draw more dots than trained most often (VAE 3, seeds 0, 1), 1 run draws fewer (PixelCNN 5, " \
           "seed 0)" in why and "WGAN-GP" not in why
    assert not any("not in this verdict" in r for r in found.verdict("numerosity.centred").reasons)
    assert not any("not in this verdict" in r for r in F.numerosity_findings(fine + blank).verdict(
        "numerosity.more").reasons)


def test_scored_settings_give_the_shares_above_and_below_the_trained_count():
    d = counts({2: 0.2, 3: 0.5, 4: 0.3})
    line = F._count_detail("vae", 3, [rec("numerosity", 3, d, model="vae")])
    assert "50% exact, 30% more and 20% fewer" in line and "1 seed)" in line
    one_failed = [rec("numerosity", 3, counts({3: 1.0}), model="vae"), rec("numerosity", 5, counts({0: 1.0}), model="vae")]
    assert F._not_scored(one_failed, one_failed[:1]) == " (1 setting not scored: every run fails its gate)"


def test_scorecard_says_when_a_section_shows_only_its_first_seeds(monkeypatch):
    """A chapter whose page shows seed 0 while its other seeds still run: the scorecard's row label and the details'
    headings say "seed 0 so far"; a complete chapter's say nothing of seeds."""
    from probe_utils import build

    recs = _numerosity()
    monkeypatch.setattr(build, "chapter_records", lambda stem, exps, store: (
        "cpu", {n: [r for r in recs if r["experiment"] == n] for n in exps}, [], [0] if stem == "01_numerosity"
        else None))
    card = F.scorecard("auto", store=FakeStore(recs))
    matrix = str(card.matrix())
    assert "`cpu` preset, seed 0 so far" in matrix
    assert matrix.count("so far") == len(card.sections[0].claims)  # the other sections are complete
    assert "runs at the `cpu` preset, seed 0 so far)" in str(card.details())
    two = F.ScoredSection(card.sections[0].section, "cpu", {}, {}, [], [], [4, 7])  # a chapter run with seeds [4, 7]
    assert two.so_far == ", seeds 4, 7 so far" and card.sections[1].so_far == ""
