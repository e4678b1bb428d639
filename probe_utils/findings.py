"""The paper's claims checked against our records: training-health gates, verdict rules, the tables chapters show
(as HTML, with a Markdown form for tests), the preset banner and the scorecard. Texts here are generated from
records and ``PRESETS``, never typed-in outcomes.

A run is scored only when it passes its experiment's training-health gate (:data:`GATES`): it must reproduce its
own training data. A claim whose runs all fail their gates reads **not testable at this scale**, with the reasons.
Each claim's verdict is one of :data:`VERDICTS`; every rule (the ``rule_*`` functions) returns True (the setting
supports the claim), False (it contradicts it) or None (the difference is within the noise: the seed-to-seed
spread and the drift between the last two training probes), and :func:`judge` turns those into a verdict.

Every threshold below is our choice: the paper states its claims in words and gives no numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from scipy import stats

from probe_utils import analysis as A
from probe_utils.build import CHAPTERS, CLEVR_EXPERIMENTS, INDEPENDENCE_EXPERIMENTS
from probe_utils.experiments import EXPERIMENTS, PRESETS
from probe_utils.models import LABELS, beyond_paper
from probe_utils.render import pie as pie_render

# ---------------------------------------------------------------------------------------------------------------
# Thresholds: all our choices (the paper gives none)
# ---------------------------------------------------------------------------------------------------------------

# training-health gates
MIN_MEASURABLE = 0.5        # a run is scored only if at least this share of its samples can be measured
MIN_SD_BINS = 0.25          # a continuous response with an sd below this many bins is degenerate (one value)
MODE_MASS_MIN = 0.15        # independence: mass near each of the three trained values (each holds 1/3 in training)
TRAIN_MASS_MIN = 0.5        # combinations: share of measurable samples on training combinations at the fewest
# numerosity
EXACT_SHARE = 0.95          # "not always the trained count": the trained count in less than this share of samples
CENTRE_TOL = 0.5            # "centred at the trained count": mean within this many counts of it
# colour, size, location
RED_CENTRE_TOL = 0.05       # "centred at the trained proportion": mean within this of it
SYMMETRIC_SKEW = 0.5        # "symmetric": |skewness| of the response's bump below this
SATURATED_SHARE = 0.1       # a response with this much mass in the measurement's first or last bin is saturated
# convolution and prototype enhancement
CLOSE_GAP = 0.15            # two modes at most this far apart are "close" (the paper's pairs: 0.3/0.4 and 0.3/0.9)
CONVOLUTION_TV = 0.25       # the actual response "matches" the convolution prediction below this TV distance
# independence
INDEPENDENCE_MASS_TV = 0.15  # "fairly independent": less than this share of the mass moves between trained values
# combinations
RECALL_HIGH = 0.9           # "very high recall"
PRECISION_MEMORISED = 0.8   # "few combinations are memorised almost exactly": precision at the fewest
SIZE_INVARIANT = 0.1        # "almost identical curves": precision differs by less than this across sizes
ABOVE_CHANCE_LIFT = 0.1     # a run is above chance when (precision - chance) / (1 - chance) is at least this
# CLEVR shape-colour pairs
MARGINAL_TV = 0.1           # "the marginal is preserved"
FEW_NOVEL = 0.25            # 4x4: "very few, if any" new cells for the rare line: share of its mass on new cells
EVEN_SHARE = 0.5            # 9x9: "almost evenly": new cells get at least half of their even share

#: The paper's own training settings (its original code; the paper's text gives the architecture), for comparison.
PAPER_SETTINGS = {"image_size": 64, "width": 64, "batch_size": 100, "n_critic": 5, "steps": 200_000}

#: What each preset is for (the numbers come from :data:`probe_utils.experiments.PRESETS`).
PRESET_PURPOSE = {
    "ci": ("Smoke test", "on whatever CPU ran this page. These figures prove that every cell runs; they are not "
           "findings and say nothing about what the models learn."),
    "cpu": ("CPU scale", "the largest scale we could run without a GPU. Read the numbers as preliminary."),
    "colab": ("Colab scale", "on one GPU, the scale a reader re-runs in minutes."),
    "gpu20k": ("GPU scale, 20k iterations", "the paper's architecture on one large GPU, stopped once the measured "
               "distribution converged: a tenth of the paper's iterations."),
    "paper": ("Paper scale", "the paper's own settings as the authors' released code ran them, on GPUs."),
}


def preset_settings(preset: str, experiments: list[str] | None = None) -> str:
    """One sentence of a preset's settings, generated from :data:`probe_utils.experiments.PRESETS` (the image size
    raised to what each of ``experiments`` needs, e.g. 64 px for CLEVR's pair scenes)."""
    from probe_utils.experiments import EXPERIMENTS, PRESETS, SEED_0_ONLY
    from probe_utils.params import check_choice

    p = PRESETS[check_choice("preset", preset, PRESETS)]
    sizes: dict[int, list[str]] = {}
    for e in experiments or []:
        sizes.setdefault(max(p.image_size, EXPERIMENTS[e].min_image_size), []).append(e)
    if len(sizes) > 1:  # the chapter's experiments run at different sizes: say which runs at which
        images = " and ".join(f"{n}×{n} images ({', '.join(f'`{e}`' for e in es)})" for n, es in sorted(sizes.items()))
    else:
        size = next(iter(sizes), p.image_size)
        images = f"{size}×{size} images"
    stop = (f"stopped earlier once the measured distribution stopped changing (tolerance {p.converge_tol:g}, at "
            f"least {p.min_steps:,} iterations; see the methods page)" if p.converge_tol is not None
            else "no early stopping")
    only = [e for e in experiments or [] if (e, preset) in SEED_0_ONLY]
    seed0 = (f"; seed 0 only for {', '.join(f'`{e}`' for e in only)}: {SEED_0_ONLY[only[0], preset]}" if only else "")
    return (f"{images}, networks of width {p.width}, batch {p.batch_size}, {p.pool_size:,} training "
            f"images, at most {p.steps:,} generator iterations ({p.n_critic} critic steps each for WGAN-GP), {stop}"
            f"{seed0}")


def paper_settings() -> str:
    """The paper's settings in the same words as :func:`preset_settings`."""
    s = PAPER_SETTINGS
    return (f"{s['image_size']}×{s['image_size']} images, width {s['width']}, batch {s['batch_size']}, "
            f"{s['n_critic']} critic steps and {s['steps'] // 1000}k iterations")


def preset_banner(preset: str, experiments: list[str] | None = None) -> Markdown:
    """A note on what the chapter's preset means for how to read its figures (settings from ``PRESETS``; image size
    as ``experiments`` run it)."""
    if preset == "auto":
        return Markdown("> Each section uses the largest-scale preset with stored records; sections at the `ci` "
                        "preset are smoke tests, not findings; see the methods page for what each preset means.")
    from probe_utils.params import check_choice

    title, purpose = PRESET_PURPOSE[check_choice("preset", preset, ["auto", *PRESETS])]
    text = (f"> **{title} (`{preset}` preset).** {preset_settings(preset, experiments)}; {purpose} The "
            f"paper used {paper_settings()}.")
    return Markdown(text + pending_note(preset))


def pending_note(preset: str) -> str:
    """What the book build left out of a page (``$PROBE_BOOK_PENDING`` and ``$PROBE_BOOK_PENDING_SEEDS``, set by
    ``python -m probe_utils book``): the model families whose runs at ``preset`` are not all stored yet, and the
    seeds not shown yet; empty when nothing was left out."""
    import os

    from probe_utils.build import PENDING_ENV, PENDING_SEEDS_ENV

    pending = [f for f in os.environ.get(PENDING_ENV, "").split(",") if f.strip()]
    seeds = [s.strip() for s in os.environ.get(PENDING_SEEDS_ENV, "").split(",") if s.strip()]
    parts = []
    if pending:
        parts.append(f"**Not shown yet: {', '.join(LABELS.get(f, f) for f in pending)}.** Their runs at the "
                     f"`{preset}` preset are not all stored; this page shows the families whose runs all are.")
    if seeds:
        word = "Seed" if len(seeds) == 1 else "Seeds"
        shown = min(int(s) for s in seeds) if all(s.isdigit() for s in seeds) else None  # seeds 0..shown-1 shown
        weighed = ("with one seed, a difference is weighed against the sampling noise and the end-of-training drift "
                   "only, not against how much seeds differ" if shown == 1 else
                   f"with {shown} seeds the seed-to-seed spread rests on {shown} runs per setting, so its 95% interval "
                   f"is wide (t = {stats.t.ppf(0.975, shown - 1):.1f}) and more differences read as within the noise"
                   if shown and shown > 1 else "a difference is weighed against fewer runs than it will be")
        parts.append(f"**{word} {', '.join(seeds)} not shown yet:** every setting here shows fewer seeds than the "
                     f"chapter asks for (the first ones, whose runs are all stored), so its verdicts rest on fewer "
                     f"seeds than they will: {weighed}.")
    if not parts:
        return ""
    return ("\n>\n> " + " ".join(parts) + " The run plan `book/run_plan.json` is under way; the page is rebuilt as "
            "the rest land.")


# ---------------------------------------------------------------------------------------------------------------
# Presentation: Markdown text, tables and findings that notebooks show as HTML
# ---------------------------------------------------------------------------------------------------------------


class Markdown(str):
    """A string that notebooks render as Markdown (``_repr_markdown_``)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def inline_html(text: str) -> str:
    """HTML of one line of our Markdown: escaped, with ``**bold**`` and ```code``` kept."""
    t = html.escape(text, quote=False)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", t)


@dataclass(frozen=True)
class Cell:
    """One table cell: its Markdown ``text``, its ``html`` and the CSS ``css`` class of its ``<td>``."""

    text: str
    html: str
    css: str = ""


def _cell(value: Any) -> Cell:
    return value if isinstance(value, Cell) else Cell(str(value), inline_html(str(value)))


class Table:
    """A table that notebooks show as HTML (``_repr_html_``; myst-nb renders Markdown outputs without tables);
    ``str()`` and ``.markdown`` give the same table as Markdown."""

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], css: str = "probe-table") -> None:
        self.columns = list(columns)
        self.rows = [[_cell(c) for c in row] for row in rows]
        self.css = css

    @property
    def markdown(self) -> str:
        esc = lambda t: t.replace("|", "\\|").replace("\n", " ")  # noqa: E731
        head = "| " + " | ".join(map(esc, self.columns)) + " |\n|" + "---|" * len(self.columns) + "\n"
        return head + "".join("| " + " | ".join(esc(c.text) for c in row) + " |\n" for row in self.rows)

    def __str__(self) -> str:
        return self.markdown

    def __len__(self) -> int:
        return len(self.rows)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{inline_html(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td class=\"{c.css}\">{c.html}</td>" if c.css else f"<td>{c.html}</td>"
                                        for c in row) + "</tr>\n" for row in self.rows)
        return f"<table class=\"{self.css}\">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _p_value(p: float) -> float | str:
    """A p-value for a table: below the smallest float it is computed as 0, which it is not."""
    return "< 1e-300" if p == 0 else p


def on_its_side(value: float, meets: Callable[[float], bool], places: int = 0, percent: bool = True) -> str:
    """``value`` (a percentage, or a plain number with ``percent=False``) with at least ``places`` decimals and as
    many more as it takes for the shown number to meet the check ``meets`` exactly when the value does (89.96%
    against a 90% target reads "89.96%", not "90%"; a mean of 0.2497 against 0.3 ± 0.05 reads "0.2497")."""
    if not np.isfinite(value):
        return "–"
    for extra in range(5):
        text = f"{value:.{places + extra}{'%' if percent else 'f'}}"
        if meets(float(text.rstrip("%")) / (100 if percent else 1)) == meets(value):
            return text
    return text


def _format(key: str, value: Any, fmt: dict[str, str]) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, str):  # already worded
        return LABELS.get(value, value) if key == "model" else value
    if key in fmt:
        return format(value, fmt[key])
    return LABELS.get(value, str(value)) if key == "model" else str(value)


def table_from_rows(rows: Iterable[dict], columns: dict[str, str], fmt: dict[str, str] | None = None) -> Table:
    """A :class:`Table` of dict rows: ``columns`` maps row keys to headers, ``fmt`` row keys to format specs."""
    fmt = fmt or {}
    return Table(columns.values(), [[_format(k, r.get(k), fmt) for k in columns] for r in rows])


# ---------------------------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------------------------

AGREES, PARTLY, DISAGREES, NOT_TESTABLE = "agrees", "partly", "disagrees", "not testable"
#: The verdict vocabulary, in the order the scorecard counts it.
VERDICTS = (AGREES, PARTLY, DISAGREES, NOT_TESTABLE)
#: How a "not testable" cell reads when nothing was tried: no runs of the claim's experiments for the family at the
#: preset (``NOT_RUN``), or its runs are planned but not all stored yet (``NOT_YET``). Both stay NOT_TESTABLE as
#: verdicts (nothing is scored); they are shown and counted apart so that "not testable" always means runs that
#: exist and could not decide.
NOT_RUN, NOT_YET = "not run", "not yet"
#: What a scorecard cell can show, in the order the scorecard counts it.
STATUSES = (*VERDICTS, NOT_RUN, NOT_YET)
NO_RUNS = "no runs"
NOT_RUN_REASON = "not run at the `{}` preset"
PENDING_REASON = "its runs at the `{}` preset are not all stored yet"
WITHIN_NOISE = "every difference is within the seed-to-seed spread and the end-of-training drift"


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict over the settings scored: ``hits`` of ``total`` support it, ``misses`` contradict it (the
    rest are undecided); ``reasons`` say why a claim is not testable (failed gates, differences within the noise)
    or what was left undecided."""

    verdict: str
    hits: int = 0
    total: int = 0
    reasons: tuple[str, ...] = ()
    misses: int = 0

    @property
    def answer(self) -> tuple[bool, bool] | None:
        """Which way the decided settings go: (some support the claim, some contradict it); None when not testable.
        Undecided settings do not count, so "agrees 2/2" and "partly 1/2" with one undecided give the same answer."""
        return None if self.verdict == NOT_TESTABLE else (self.hits > 0, self.misses > 0)

    @property
    def status(self) -> str:
        """The verdict, or for a claim nothing was tried on: ``not run`` (no runs for it at the preset) or ``not
        yet`` (its runs are not all stored yet); see :data:`STATUSES`."""
        if self.verdict != NOT_TESTABLE or self.total or not self.reasons:
            return self.verdict
        if all(r == NO_RUNS or r.startswith((NO_RUNS + " ", NOT_RUN_REASON.split("`")[0])) for r in self.reasons):
            return NOT_RUN
        if all(r.endswith(PENDING_REASON.split("`")[-1]) for r in self.reasons):
            return NOT_YET
        return self.verdict

    @property
    def label(self) -> str:
        """``agrees 3/3``, ``partly 2/5``, ``disagrees 0/4``, ``not testable``, ``not run`` or ``not yet``."""
        return self.status if self.verdict == NOT_TESTABLE else f"{self.verdict} {self.hits}/{self.total}"

    @property
    def css(self) -> str:
        return "verdict-" + self.status.replace(" ", "-")

    def cell(self, href: str | None = None) -> Cell:
        """The verdict as a table cell (CSS class ``verdict-agrees`` etc.). With ``href`` (a scorecard cell): the
        short label linked to it, the reasons on hover; without: the label with the reasons below it."""
        untestable = self.status == NOT_TESTABLE
        shown = "not testable at this scale" if untestable else self.label
        why = "; ".join(self.reasons)
        text = (f"**{shown}**" if untestable else shown) + (f" ({why})" if why else "")
        if href:
            title = f" title=\"{html.escape(why)}\"" if why else ""
            inner = f"<a href=\"{html.escape(href)}\">{html.escape(self.label)}</a>"
            return Cell(text, f"<span class=\"verdict {self.css}\"{title}>{inner}</span>", self.css)
        reason = f"<br><span class=\"verdict-reason\">{html.escape(why)}</span>" if why else ""
        return Cell(text, f"<span class=\"verdict {self.css}\">{html.escape(shown)}</span>{reason}", self.css)


def _named(labels: Sequence[str], most: int = 6) -> str:
    """'A, B, C' or 'A, B, …, F and 3 more': the settings a verdict's reason speaks of."""
    extra = f" and {len(labels) - most} more" if len(labels) > most else ""
    return ", ".join(labels[:most]) + extra


def judge(outcomes: Sequence[bool | None], reasons: Sequence[str] = (), undecided: str = WITHIN_NOISE,
          too_few: str = NO_RUNS, settings: Sequence[str] = ()) -> Verdict:
    """The verdict over per-setting outcomes. No setting scored: not testable (``reasons`` say why, e.g. failed
    gates; without any, ``too_few``: why a claim that compares settings had none to compare). Every outcome
    undecided (None): not testable, because of ``undecided`` (by default: within the noise) and ``reasons``.
    All support the claim: agrees. None supports it (and at least one contradicts it): disagrees. Otherwise partly;
    undecided settings are counted in the reasons. ``settings`` (one label per outcome, e.g. "VAE 3") lets the
    reasons name the undecided settings and, where the verdict is partly, those that go against the claim."""
    total = len(outcomes)
    if settings and len(settings) != total:
        raise ValueError(f"settings needs one label per outcome ({total}); got {len(settings)}")
    hits = sum(o is True for o in outcomes)
    misses = sum(o is False for o in outcomes)
    reasons = tuple(reasons)
    if total == 0:
        return Verdict(NOT_TESTABLE, 0, 0, reasons or (too_few,))
    if hits + misses == 0:
        return Verdict(NOT_TESTABLE, 0, total, (undecided,) + reasons)

    def which(outcome: bool | None) -> list[str]:
        return [s for s, o in zip(settings, outcomes) if o is outcome]

    n_undecided = total - hits - misses
    named = f" ({_named(which(None))})" if settings else ""
    note = (f"{n_undecided} of {total} undecided{named}: {undecided}",) if n_undecided else ()
    if hits == total:
        return Verdict(AGREES, hits, total, ())
    against = (f"against the claim: {_named(which(False))}",) if hits and misses and settings else ()
    return Verdict(DISAGREES if hits == 0 else PARTLY, hits, total, against + note, misses)


def _with_reasons(verdict: Verdict, extra: Sequence[str]) -> Verdict:
    """``verdict`` with ``extra`` reasons after its own (a caveat a reader needs beside any verdict)."""
    return dataclasses.replace(verdict, reasons=verdict.reasons + tuple(extra)) if extra else verdict


@dataclass(frozen=True)
class Claim:
    """One claim of the paper (``paper``), what our runs show (``shows``, with the numbers) and the verdict;
    ``key`` names the claim across families and presets (a scorecard row)."""

    key: str
    paper: str
    shows: str
    verdict: Verdict

    def __post_init__(self) -> None:
        # "in 0 of 0 settings" says nothing: when no setting could be scored, say so
        counts = _COUNTS.findall(self.shows)
        if counts and all(total == "0" for _, total in counts):
            object.__setattr__(self, "shows", "no runs for this claim at this preset" if self.verdict.status == NOT_RUN
                               else "no setting could be scored (its runs fail their training-health gates, or too "
                                    "few settings were run: see the verdict's reasons)")


#: the "N of M" counts in a "what our runs show" text
_COUNTS = re.compile(r"\b(\d+) of (\d+)\b")


@dataclass
class Findings:
    """The claims of one chapter section and the notes before them (preset, runs that fail their gates). Shown as
    HTML in a ``<div id="{anchor}">`` so the scorecard can link to it; ``str()`` gives Markdown."""

    anchor: str
    claims: list[Claim]
    notes: list[str] = field(default_factory=list)
    #: the same claims judged on the families the paper did not report on (:func:`by_scope`), shown after these
    beyond: Findings | None = None
    #: the model families these findings were computed on, where a split by scope named them
    families: list[str] = field(default_factory=list)

    def table(self) -> Table:
        return Table(["the paper says", "what our runs show", "verdict"],
                     [[c.paper, c.shows, c.verdict.cell()] for c in self.claims], css="probe-table findings-table")

    @property
    def markdown(self) -> str:
        extra = [_beyond_heading(self.beyond), self.beyond.markdown] if self.beyond else []
        return "\n\n".join([*self.notes, self.table().markdown, *extra])

    def __str__(self) -> str:
        return self.markdown

    def _repr_html_(self) -> str:
        notes = "".join(f"<p>{inline_html(n.removeprefix('> '))}</p>\n" for n in self.notes)
        extra = (f"\n<p class=\"findings-beyond\">{inline_html(_beyond_heading(self.beyond))}</p>\n"
                 f"{self.beyond._repr_html_()}" if self.beyond else "")
        return (f"<div class=\"findings\" id=\"{self.anchor}\">\n{notes}{self.table()._repr_html_()}\n</div>"
                + extra)

    def verdict(self, key: str) -> Verdict:
        """The verdict of the claim ``key``."""
        for c in self.claims:
            if c.key == key:
                return c.verdict
        raise KeyError(f"no claim {key!r}; have {[c.key for c in self.claims]}")


# ---------------------------------------------------------------------------------------------------------------
# Records: distributions, probes and the noise a difference is compared with
# ---------------------------------------------------------------------------------------------------------------

Stat = Callable[[np.ndarray], float]


def _dist(rec: dict) -> np.ndarray:
    return np.asarray(rec["result"]["distribution"], float)


def _centres(rec: dict) -> np.ndarray:
    return EXPERIMENTS[rec["experiment"]].centres


def measurable(rec: dict) -> float:
    """Share of a run's samples that could be measured."""
    return 1.0 - float(rec["result"].get("invalid_share", 0.0))


def _probe_dists(rec: dict) -> list[np.ndarray]:
    """The distributions measured during training (``result.probes``), oldest first."""
    probes = rec["result"].get("probes") or []
    return [np.asarray(p["dist"], float) for p in probes if p.get("dist") is not None and np.sum(p["dist"]) > 0]


def drift(recs: Sequence[dict], stat: Stat) -> float:
    """How much ``stat`` still moved at the end of training: over runs, the mean of |stat(last probe) -
    stat(probe before)| (sampling noise of the probes included); NaN when no run has two probes."""
    moves = []
    for r in recs:
        probes = _probe_dists(r)
        if len(probes) >= 2:
            moves.append(abs(stat(probes[-1]) - stat(probes[-2])))
    moves = [m for m in moves if np.isfinite(m)]
    return float(np.mean(moves)) if moves else float("nan")


def noise(recs: Sequence[dict], stat: Stat) -> float:
    """What a difference in ``stat`` must exceed to count: the larger of the seed-to-seed spread (half-width of the
    t interval of the mean over seeds) and the end-of-training :func:`drift`; 0 when neither is known (one seed
    without probes)."""
    spread = A.half_width([stat(_dist(r)) for r in recs])
    known = [x for x in (spread, drift(recs, stat)) if np.isfinite(x)]
    return max(known) if known else 0.0


def _tv(p: np.ndarray, q: np.ndarray) -> float:
    return A.distribution_distance(p, q)["tv"] if p.sum() > 0 and q.sum() > 0 else float("nan")


def tv_floor(recs: Sequence[dict], coarse: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
    """The TV distance a response shows with itself: the larger of the mean TV between the last two probes of a
    run and the mean TV between seeds' final distributions; 0 when neither is known. ``coarse``: compare the
    distributions after this map (e.g. onto the mass near each trained value)."""
    f = coarse or (lambda d: d)
    ends = [_tv(f(p[-1]), f(p[-2])) for p in map(_probe_dists, recs) if len(p) >= 2]
    pairs = [_tv(f(_dist(a)), f(_dist(b))) for i, a in enumerate(recs) for b in recs[i + 1:]]
    known = [float(np.nanmean(x)) for x in (ends, pairs) if x and np.isfinite(x).any()]
    return max(known) if known else 0.0


def beyond(diff: float, noise_: float) -> bool | None:
    """True when ``diff`` exceeds the noise, False when it is below minus the noise, None in between (or NaN; a
    difference of rounding size, 1e-9, never counts)."""
    if not np.isfinite(diff) or abs(diff) <= max(noise_, 1e-9):
        return None
    return bool(diff > 0)


def within(value: float, limit: float, noise_: float) -> bool | None:
    """True when ``value`` + noise stays below ``limit``, False when ``value`` - noise reaches it, None between."""
    return beyond(limit - value, noise_)


def tv_within(tv: float, limit: float, floor: float) -> bool | None:
    """For TV distances (which already hold the noise): True below ``limit``; False at or above it when also above
    the noise ``floor`` (the TV of a response with itself); None otherwise."""
    if not np.isfinite(tv):
        return None
    if tv < limit:
        return True
    return False if tv > floor else None


# ---------------------------------------------------------------------------------------------------------------
# Training-health gates: a run is scored only if it reproduces its own training data
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gate:
    """Whether a run passes its training-health gate and, when it does not, why (``reasons``)."""

    passed: bool
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def _gate(reasons: list[str]) -> Gate:
    return Gate(not reasons, tuple(reasons))


def _measurable_reasons(rec: dict) -> list[str]:
    share = measurable(rec)
    if share < MIN_MEASURABLE:
        return [f"only {share:.0%} of samples measurable (needs {MIN_MEASURABLE:.0%})"]
    return [] if _dist(rec).sum() > 0 else ["no measurable sample"]


def _count_mode(rec: dict) -> int:
    """The most frequent count of a count record (numerosity, CLEVR numerosity)."""
    return int(round(float(_centres(rec)[int(np.argmax(_dist(rec)))])))


def gate_count(rec: dict, siblings: Sequence[dict] = ()) -> Gate:
    """numerosity, clevr_numerosity: at least :data:`MIN_MEASURABLE` of the samples can be counted, and the trained
    count is the most frequent count among them."""
    reasons = _measurable_reasons(rec)
    if not reasons:
        d = _dist(rec)
        mode = _count_mode(rec)
        if mode != int(rec["value"]):
            reasons.append(f"the most frequent count is {mode} ({d.max():.0%}), not the trained {rec['value']}")
    return _gate(reasons)


def _spacing(experiment: str) -> float:
    return float(pie_render.SPACING[EXPERIMENTS[experiment].feature])


def gate_continuous(rec: dict, siblings: Sequence[dict] = ()) -> Gate:
    """pie_red, pie_size, pie_location: at least :data:`MIN_MEASURABLE` of the samples measurable, the mean
    within one grid step (``render.pie.SPACING`` of the feature) of the trained value, and an sd of at least
    :data:`MIN_SD_BINS` bins (a degenerate response, every sample measuring the same, is not a response)."""
    reasons = _measurable_reasons(rec)
    if not reasons:
        exp = EXPERIMENTS[rec["experiment"]]
        shape = A.response_shape(_dist(rec), exp.centres)
        step, width = _spacing(exp.name), float(np.diff(exp.edges).min())
        if abs(shape["mean"] - float(rec["value"])) > step:
            reasons.append(f"mean {shape['mean']:.3g} is more than one grid step ({step:g}) from the trained "
                           f"{rec['value']:g}")
        if shape["sd"] < MIN_SD_BINS * width:
            reasons.append(f"degenerate: sd {shape['sd']:.2g} (every sample measures about {shape['mean']:.2f})")
    return _gate(reasons)


def _same_run_family(rec: dict, other: dict) -> bool:
    """Same experiment, model, seed, network width and training-set size (only the trained value differs)."""
    keys = ("width", "pool_size")
    return (other["experiment"] == rec["experiment"] and other["model"] == rec["model"]
            and other.get("seed") == rec.get("seed")
            and all((other.get("params") or {}).get(k) == (rec.get("params") or {}).get(k) for k in keys))


def reference_run(rec: dict, siblings: Sequence[dict]) -> dict:
    """The run the gate of ``rec`` rests on: among ``siblings`` of the same experiment, model, seed, width and
    training-set size, the one with the fewest trained value (fewest nuisance values, fewest combinations); ``rec``
    itself when it has the fewest."""
    family = [r for r in siblings if _same_run_family(rec, r)] + [rec]
    return min(family, key=lambda r: int(r["value"]))


def _at(ref: dict, reasons: list[str]) -> list[str]:
    """Reasons of a reference run, saying which run they are about."""
    return [f"its reference run (trained value {ref['value']}): {r}" for r in reasons]


def _mode_mass_reasons(rec: dict) -> list[str]:
    feature = rec["experiment"].removeprefix("indep_")
    values = pie_render.INDEPENDENCE_VALUES["radius" if feature == "size" else feature]
    modes = A.per_mode(_dist(rec), _centres(rec), values)
    low = [m for m in modes if m["mass"] < MODE_MASS_MIN]
    k = rec["value"]
    near = ", ".join(f"{m['mass']:.0%} near {m['value']:g}" for m in low)
    return [f"the run with {k} nuisance value{'' if k == 1 else 's'} puts only {near} (needs "
            f"{MODE_MASS_MIN:.0%} near each trained value)"] if low else []


def gate_independence(rec: dict, siblings: Sequence[dict] = ()) -> Gate:
    """indep_red, indep_size, indep_location: at least :data:`MIN_MEASURABLE` of the samples measurable, and the
    reference run (same model and seed, fewest nuisance values) reproduces the three trained values: at least
    :data:`MODE_MASS_MIN` of its measurable mass near each (windows halfway to the neighbouring values)."""
    reasons = _measurable_reasons(rec)
    ref = reference_run(rec, siblings)
    if ref is rec:
        return _gate(reasons or _mode_mass_reasons(rec))
    return _gate(reasons + (_at(ref, _measurable_reasons(ref)) or _mode_mass_reasons(ref)))


def train_mass(rec: dict, tolerant: bool = False) -> float:
    """Share of a combinations run's measurable samples that fall on its training combinations (``tolerant``: or
    one step off one, :data:`TOLERANT_READING`)."""
    d = _dist(rec)
    near = _near(rec, tolerant)
    on = np.asarray(rec["result"]["train_support"], int) if near is None else near
    return float(d[on].sum() / d.sum()) if d.sum() > 0 else 0.0


def gate_combinations(rec: dict, siblings: Sequence[dict] = ()) -> Gate:
    """pie_combos, mnist_combos: at least :data:`MIN_MEASURABLE` of the samples measurable, and the reference run
    (same model, seed, width and data size; fewest training combinations) puts at least :data:`TRAIN_MASS_MIN` of
    its measurable samples on training combinations."""
    reasons = _measurable_reasons(rec)
    ref = reference_run(rec, siblings)
    ref_reasons = [] if ref is rec else _at(ref, _measurable_reasons(ref))
    if not (ref_reasons or (ref is rec and reasons)) and train_mass(ref) < TRAIN_MASS_MIN:
        ref_reasons.append(f"at {ref['value']} training combinations only {train_mass(ref):.0%} of samples on them "
                           f"(needs {TRAIN_MASS_MIN:.0%})")
    return _gate(reasons + ref_reasons)


def gate_mixture(rec: dict, siblings: Sequence[dict] = ()) -> Gate:
    """pie_red_mix: at least :data:`MIN_MEASURABLE` of the samples measurable, and for each of its modes a
    ``pie_red`` run of the same model at that value (among ``siblings``) passes its own gate."""
    reasons = _measurable_reasons(rec)
    for m in A.mixture_modes(rec["value"]):
        uni = [r for r in siblings if r["experiment"] == "pie_red" and r["model"] == rec["model"]
               and abs(float(r["value"]) - m) < 1e-9]
        if not uni:
            reasons.append(f"no single-value run at red {m:g}")
        elif not any(gate_continuous(r).passed for r in uni):
            reasons.append(f"the single-value runs at red {m:g} fail their gate")
    return _gate(reasons)


def gate_measurable(rec: dict, siblings: Sequence[dict] = ()) -> Gate:
    """clevr_pairs_*: at least :data:`MIN_MEASURABLE` of the samples measurable (both objects' shapes and colours
    read)."""
    return _gate(_measurable_reasons(rec))


#: The gate of each experiment.
GATES: dict[str, Callable[[dict, Sequence[dict]], Gate]] = {
    "numerosity": gate_count, "clevr_numerosity": gate_count,
    "pie_red": gate_continuous, "pie_size": gate_continuous, "pie_location": gate_continuous,
    "pie_red_mix": gate_mixture,
    "indep_red": gate_independence, "indep_size": gate_independence, "indep_location": gate_independence,
    "pie_combos": gate_combinations, "mnist_combos": gate_combinations,
    "clevr_pairs_4x4": gate_measurable, "clevr_pairs_9x9": gate_measurable,
}


def gate(rec: dict, siblings: Iterable[dict] = ()) -> Gate:
    """The training-health gate of one run; ``siblings``: the other runs it may rest on (the reference run of
    independence and combinations, the single-value runs of a mixture)."""
    check = GATES.get(rec["experiment"])
    if check is None:
        raise KeyError(f"no gate for experiment {rec['experiment']!r}; have {sorted(GATES)}")
    return check(rec, list(siblings))


def split_by_gate(records: Sequence[dict], siblings: Iterable[dict] | None = None
                  ) -> tuple[list[dict], list[tuple[dict, Gate]]]:
    """(runs that pass their gate, (run, gate) of those that fail); ``siblings`` default to ``records``."""
    sib = list(records) if siblings is None else list(siblings)
    passed, failed = [], []
    for r in records:
        g = gate(r, sib)
        if g.passed:
            passed.append(r)
        else:
            failed.append((r, g))
    return passed, failed


def setting_of(run: dict) -> tuple:
    """A run's setting, what its seeds repeat: (experiment, model, trained value, width, number of training images)."""
    p = run.get("params") or {}
    return run.get("experiment"), run["model"], run["value"], p.get("width"), p.get("pool_size")


def shown_runs(records: Sequence[dict], siblings: Iterable[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """What a figure or table shows of ``records``, so that it shows what the verdicts score: of a setting
    (:func:`setting_of`) with a run that passes its gate, the passing runs only; of a setting whose runs all fail,
    all of them (shown, marked not scored). Returns (runs shown, failing runs left out); ``siblings`` (the runs a
    gate may rest on) default to ``records``. Runs of an experiment without a gate (hand-made ones) are shown."""
    sib = list(records) if siblings is None else list(siblings)
    bad = {id(r) for r in records if r.get("experiment") in GATES and "result" in r and not gate(r, sib).passed}
    scored = {setting_of(r) for r in records if id(r) not in bad}
    left = [r for r in records if id(r) in bad and setting_of(r) in scored]
    return [r for r in records if not (id(r) in bad and setting_of(r) in scored)], left


def _first_line(doc: str | None) -> str:
    text = " ".join((doc or "").split())
    return text.split(": ", 1)[1] if ": " in text else text


def gates_table() -> Table:
    """Each experiment's training-health gate, from the gates' docstrings and thresholds."""
    by_check: dict[Callable, list[str]] = {}
    for name, check in GATES.items():
        by_check.setdefault(check, []).append(name)
    values = {"MIN_MEASURABLE": f"{MIN_MEASURABLE:.0%}", "MODE_MASS_MIN": f"{MODE_MASS_MIN:.0%}",
              "TRAIN_MASS_MIN": f"{TRAIN_MASS_MIN:.0%}", "MIN_SD_BINS": f"{MIN_SD_BINS:g}"}
    rows = []
    for check, names in by_check.items():
        text = _first_line(check.__doc__)
        text = re.sub(r":data:`(\w+)`", lambda m: values.get(m.group(1), m.group(1)), text)
        text = text.replace("(among ``siblings``) ", "").replace("``", "`")
        rows.append([", ".join(f"`{n}`" for n in names), text])
    return Table(["experiments", "a run is scored only if"], rows)


def gate_report(records: Sequence[dict], siblings: Iterable[dict] | None = None) -> Table:
    """Every run with its measurable share and whether it passes its gate (with the reason when not)."""
    sib = list(records) if siblings is None else list(siblings)
    rows = []
    for r in sorted(records, key=lambda r: (r["experiment"], r["model"], str(r["value"]), r.get("seed", 0))):
        g = gate(r, sib)
        rows.append({"experiment": r["experiment"], "model": r["model"], "value": r["value"], "seed": r.get("seed"),
                     "measurable": measurable(r), "gate": "passes" if g.passed else "fails", "why": g.reason})
    return table_from_rows(rows, {"experiment": "experiment", "model": "model", "value": "trained", "seed": "seed",
                                  "measurable": "measurable", "gate": "gate", "why": "why not"},
                           {"measurable": ".0%"})


def _experiment_names(records: Iterable[dict]) -> dict[str, str]:
    """Short names that tell the experiments of ``records`` apart ('red', 'size' for pie_red, pie_size: what they
    do not share), or {} when they are of one experiment (a value alone then names a setting)."""
    names = sorted({r["experiment"] for r in records})
    if len(names) < 2:
        return {}
    parts = [n.split("_") for n in names]
    shared = 0
    while all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
        shared += 1
    return {n: " ".join(p[shared:]) for n, p in zip(names, parts)}


def _label_parts(rec: dict, experiments: dict[str, str] | None = None) -> tuple[str, str, str]:
    """The family's label, the trained value (after the experiment's short name in ``experiments``, where it has
    one), and " (width 8)" (network width or training-set size) when not the preset's own, else ""."""
    extra = [f"{what} {rec['params'][k]}" for k, what in (("width", "width"), ("pool_size", "training images"))
             if "preset" in rec and rec.get("params", {}).get(k) is not None and not _default(rec, k)]
    value = str(rec["value"])
    if experiments and rec.get("experiment") in experiments:
        value = f"{experiments[rec['experiment']]} {value}"
    return LABELS.get(rec["model"], rec["model"]), value, f" ({', '.join(extra)})" if extra else ""


def _label(rec: dict, experiments: dict[str, str] | None = None) -> str:
    """'VAE 3' ('VAE red 0.3' with ``experiments`` naming pie_red 'red'), with the network width or training-set
    size when not the preset's own."""
    name, value, extra = _label_parts(rec, experiments)
    return f"{name} {value}{extra}"


def gate_reasons(failed: Sequence[tuple[dict, Gate]], records: Iterable[dict] | None = None) -> tuple[str, ...]:
    """The reason a verdict gives when runs it would rest on fail their gates: how many, and for which settings,
    one family's values together ("WGAN-GP FC 1, 3, 5"; each run's reason is in :func:`gate_note`). Where
    ``records`` (the verdict's runs; default: the failing ones) span several experiments, each setting names its
    experiment ("WGAN-GP mnist combos 10, 40")."""
    if not failed:
        return ()
    names = _experiment_names(r for r, _ in failed) if records is None else _experiment_names(records)
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r, _ in failed:
        family, value, extra = _label_parts(r)
        groups.setdefault((family, names.get(r.get("experiment"), ""), extra), []).append(value)
    settings = "; ".join(f"{family} {exp + ' ' if exp else ''}{', '.join(dict.fromkeys(values))}{extra}"
                         for (family, exp, extra), values in groups.items())
    n = len(failed)
    return (f"{n} run{' fails its' if n == 1 else 's fail their'} training-health gate ({settings})",)


def claim_reasons(every: Sequence[dict], failed: Sequence[tuple[dict, Gate]], relevant: Callable[[dict], bool],
                  none: str = NO_RUNS) -> tuple[str, ...]:
    """Why a claim that rests on the runs ``relevant`` picks out of ``every`` may have no scored setting: those of
    them that fail their gates (:func:`gate_reasons`), or ``none`` (a reason that starts "no runs": the cell reads
    *not run*) where there is no such run at all, so that "not testable" always means runs that exist."""
    if not any(relevant(r) for r in every):
        return (none,)
    return gate_reasons([(r, g) for r, g in failed if relevant(r)], every)


def _of(*experiments: str) -> Callable[[dict], bool]:
    """Whether a run is of one of ``experiments``."""
    return lambda r: r.get("experiment") in experiments


def gate_note(records: Sequence[dict], failed: Sequence[tuple[dict, Gate]]) -> str:
    """A paragraph naming the runs that fail their gates, each with its reason."""
    if not failed:
        return f"All {len(records)} runs pass their training-health gate." if records else "No runs."
    names = _experiment_names(records)
    seeds: dict[tuple[tuple[str, str, str, str], str], list[str]] = {}  # a setting's seeds that fail for one reason
    for r, g in failed:
        name, value, extra = _label_parts(r)
        setting = (name, names.get(r.get("experiment"), ""), value, extra)
        seeds.setdefault((setting, g.reason), []).append(str(r.get("seed")))
    values: dict[tuple[str, str, str, str, tuple[str, ...]], list[str]] = {}  # and its experiment's values sharing both
    for ((name, exp, value, extra), reason), ss in seeds.items():
        values.setdefault((name, exp, extra, reason, tuple(ss)), []).append(value)
    runs = "; ".join(f"{name} {exp + ' ' if exp else ''}{', '.join(vs)}{extra}, seed{'s' if len(ss) > 1 else ''} "
                     f"{', '.join(ss)}: {reason}" for (name, exp, extra, reason, ss), vs in values.items())
    return (f"**{len(failed)} of {len(records)} runs fail their training-health gate and are not scored** (they do "
            f"not reproduce their own training data, so they cannot show how the model generalizes): {runs}.")


def _preset_note(records: Iterable[dict]) -> list[str]:
    presets = sorted({r["preset"] for r in records if "preset" in r})
    notes = [f"Measured at the `{'`, `'.join(presets)}` preset."] if presets else []
    if "ci" in presets:
        notes.insert(0, "> These rows come from the `ci` smoke test; the verdicts below are not findings.")
    return notes


# ---------------------------------------------------------------------------------------------------------------
# Helpers shared by the chapters' findings
# ---------------------------------------------------------------------------------------------------------------

def _mean_dist(recs: Sequence[dict]) -> np.ndarray:
    return np.mean([_dist(r) / max(_dist(r).sum(), 1e-12) for r in recs], axis=0)


def _shape_stat(key: str, centres: np.ndarray) -> Stat:
    """A :func:`probe_utils.analysis.response_shape` statistic of a distribution (NaN for an empty one)."""
    return lambda d: A.response_shape(d, centres)[key] if np.sum(d) > 0 else float("nan")


def _nanmean(values: Iterable[float]) -> float:
    v = np.asarray(list(values), float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")


def _seed_mean(recs: Sequence[dict], stat: Stat) -> float:
    """The statistic averaged over seeds (NaN seeds ignored; NaN when every seed's is undefined)."""
    return _nanmean([stat(_dist(r)) for r in recs])


def _not_scored(records: Sequence[dict], passed: Sequence[dict]) -> str:
    """' (n settings not scored: every run fails its gate)' or ''."""
    n = len({(r["model"], str(r["value"])) for r in records} - {(r["model"], str(r["value"])) for r in passed})
    return f" ({n} setting{'s' if n != 1 else ''} not scored: every run fails its gate)" if n else ""


def _family_index(model: str) -> tuple[int, str]:
    return (list(LABELS).index(model) if model in LABELS else len(LABELS), model)


def _records_of(records: Any, keep: Callable[[dict], bool]) -> Any:
    """``records`` (a list, or lists by experiment) narrowed to the records ``keep`` accepts, in the same shape."""
    if isinstance(records, dict):
        return {n: [r for r in rs if keep(r)] for n, rs in records.items()}
    return [r for r in records if keep(r)]


def _all_records(records: Any) -> list[dict]:
    return [r for rs in records.values() for r in rs] if isinstance(records, dict) else list(records)


def by_scope(compute: Callable[..., Findings]) -> Callable[..., Findings]:
    """A chapter's findings judged on the families the paper reported on, with the families it did not (diffusion, a
    family of your own: :func:`probe_utils.models.beyond_paper`) judged by the same rules apart, after them
    (``Findings.beyond``): a verdict on the paper's claim is never moved by a model the paper did not train. With
    families of one kind only, one set of findings as before."""

    @functools.wraps(compute)
    def scoped(records: Any, *args: Any, **kwargs: Any) -> Findings:
        every = _all_records(records)
        if not any(beyond_paper(r["model"]) for r in every) or all(beyond_paper(r["model"]) for r in every):
            return compute(records, *args, **kwargs)
        main = compute(_records_of(records, lambda r: not beyond_paper(r["model"])), *args, **kwargs)
        rest = _records_of(records, lambda r: beyond_paper(r["model"]))
        bound = inspect.signature(compute).bind(rest, *args, **kwargs)
        bound.arguments["anchor"] = f"{main.anchor}-beyond"
        main.beyond = compute(*bound.args, **bound.kwargs)
        main.beyond.families = _families(_all_records(rest))
        said = set(_preset_note(every))  # the preset (and a ci warning), said once, above
        main.beyond.notes = [n for n in main.beyond.notes if n not in said]
        main.families = _families(r for r in every if not beyond_paper(r["model"]))
        return main

    return scoped


def _beyond_heading(beyond: Findings) -> str:
    """The line that introduces the findings of families beyond the paper."""
    names = ", ".join(LABELS.get(m, m) for m in beyond.families) or "families the paper did not train"
    return (f"**Beyond the paper** ({names}):"
            " the same claims, judged by the same rules on the runs of families the paper did not train; they do not "
            "count in the verdicts above.")


def _families(records: Iterable[dict]) -> list[str]:
    """The model families of ``records``, in the book's order."""
    return sorted({r["model"] for r in records}, key=_family_index)


def _fmt_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _ok(outcome: bool | None) -> str:
    return {True: "yes", False: "no", None: "within noise"}[outcome]


# ---------------------------------------------------------------------------------------------------------------
# Numerosity (Sec. 4.1.1): dots and CLEVR objects
# ---------------------------------------------------------------------------------------------------------------

def _share_at(value: int) -> Stat:
    return lambda d: float(d[value] / d.sum()) if value < d.size and d.sum() > 0 else 0.0


def _count_mean(d: np.ndarray) -> float:
    return float((np.arange(d.size) * d).sum() / d.sum()) if d.sum() > 0 else float("nan")


def _count_sd(d: np.ndarray) -> float:
    m = _count_mean(d)
    return float(np.sqrt(((np.arange(d.size) - m) ** 2 * d).sum() / d.sum())) if d.sum() > 0 else float("nan")


def _excess(value: int) -> Stat:
    """Mass above the trained count minus mass below it."""
    return lambda d: float((d[value + 1:].sum() - d[:value].sum()) / d.sum()) if d.sum() > 0 else float("nan")


def rule_not_always_exact(recs: Sequence[dict]) -> bool | None:
    """"Generated images do not always have the trained count": the trained count is the most frequent one (a
    broken model, whose mode is elsewhere, never passes) and its share stays below :data:`EXACT_SHARE` by more than
    the noise. False when the model draws the trained count (almost) always."""
    value, d = int(recs[0]["value"]), _mean_dist(recs)
    if int(np.argmax(d)) != value:
        return None
    stat = _share_at(value)
    return within(stat(d), EXACT_SHARE, noise(recs, stat))


def rule_centred(recs: Sequence[dict]) -> bool | None:
    """"The distribution is centred at the trained count": the trained count is the mode and the mean is within
    :data:`CENTRE_TOL` of it, by more than the noise; False when the mode is elsewhere or the mean is off."""
    value, d = int(recs[0]["value"]), _mean_dist(recs)
    if int(np.argmax(d)) != value:
        return False
    off: Stat = lambda x: abs(_count_mean(x) - value)  # noqa: E731
    return within(off(d), CENTRE_TOL, noise(recs, off))


def rule_more_than_fewer(recs: Sequence[dict]) -> bool | None:
    """"Biased slightly towards more": more mass above the trained count than below it, by more than the noise."""
    stat = _excess(int(recs[0]["value"]))
    return beyond(stat(_mean_dist(recs)), noise(recs, stat))


def rule_spread_grows(settings: Sequence[Sequence[dict]]) -> bool | None:
    """"The spread grows with the count" (one family; one list of seeds' runs per trained count): the sd at the
    largest trained count exceeds the sd at the smallest by more than the noise, and the sds rise with the count
    (positive rank correlation). Needs two trained counts."""
    if len(settings) < 2:
        return None
    settings = sorted(settings, key=lambda recs: int(recs[0]["value"]))
    sds = [_count_sd(_mean_dist(recs)) for recs in settings]
    rho = stats.spearmanr([int(s[0]["value"]) for s in settings], sds)[0] if len(sds) > 2 else np.sign(
        sds[-1] - sds[0])
    out = beyond(sds[-1] - sds[0], max(noise(settings[0], _count_sd), noise(settings[-1], _count_sd)))
    if out is True and not rho > 0 or out is False and not rho < 0:
        return None
    return out


def with_reading(rec: dict, name: str) -> dict:
    """The record as if its reading ``name`` were the main one (final distribution and unmeasurable share replaced;
    the probes stay those of the main reading, so the end-of-training drift is the main reading's)."""
    r = rec["result"]["readings"][name]
    return {**rec, "result": {**rec["result"], "distribution": r["distribution"],
                              "invalid_share": r.get("invalid_share", rec["result"].get("invalid_share", 0.0))}}


def cross_checked(main: Findings, alt: dict[str, Findings], as_counted: str = "as counted") -> tuple[list[Claim],
                                                                                                 list[str]]:
    """``main``'s claims, each checked against the same claim judged under other readings (``alt``: what the
    reading is -> its findings): where the settings decided under some reading go another way
    (:attr:`Verdict.answer`), the claim is **not testable**, because the measurement's rule decides it, and says
    what each reading gives (``as_counted`` names the main reading); where a reading only scores fewer or more
    settings, the main verdict stands and names it. Also returns the claims whose answer changed."""
    claims, changed = [], []
    for c in main.claims:
        v = checked_verdict(c.verdict, {f"with {n}": f.verdict(c.key) for n, f in alt.items()}, as_counted)
        if v.verdict == NOT_TESTABLE and c.verdict.verdict != NOT_TESTABLE:
            changed.append(c.paper)
        claims.append(Claim(c.key, c.paper, c.shows, v))
    return claims, changed


def checked_verdict(main: Verdict, others: dict[str, Verdict], as_counted: str = "as counted",
                    decides: str = "the measurement's rules decide it") -> Verdict:
    """One verdict checked against the same claim judged other ways (``others``: how, e.g. "with faint blobs left
    out" -> its verdict): where the settings decided another way go otherwise (:attr:`Verdict.answer`), the reading
    decides the claim, not the runs: not testable, saying what each gives; otherwise ``main`` stands, naming the
    other verdicts that differ from it."""
    differ = {n: v for n, v in others.items() if v.verdict != main.verdict}
    named = [f"{v.label} {n}" for n, v in differ.items()]
    if main.answer is not None and any(v.answer not in (None, main.answer) for v in differ.values()):
        return Verdict(NOT_TESTABLE, 0, main.total, ("; ".join([f"{decides}: {main.label} {as_counted}", *named]),))
    if differ:
        return Verdict(main.verdict, main.hits, main.total, (*main.reasons, *named), main.misses)
    return main


def robust(main: Findings, records: Sequence[dict], compute: Callable[[list[dict]], Findings]) -> Findings:
    """``main`` with each verdict checked against the measurement's alternative readings of the same samples (the
    experiments' ``robust_readings``, e.g. merged blobs by area, faint blobs left out): a claim whose decided
    settings go another way under some reading (:attr:`Verdict.answer`: some support it under one reading and none
    under the other, or some contradict it under one and none under the other) is **not testable**, because the
    rule of the measurement decides it, and says which reading gives what. A reading under which the claim cannot
    be scored, or that only decides more or fewer settings, does not overturn it; the cell names that reading's
    verdict. ``compute`` makes the findings from records."""
    names: dict[str, str] = {}
    for r in records:
        names.update(EXPERIMENTS[r["experiment"]].robust_readings)
    if not names or not records:
        return main
    have = {n: d for n, d in names.items() if all(n in r["result"].get("readings", {}) for r in records)}
    lacking = [d for n, d in names.items() if n not in have]
    alt = {have[n]: compute([with_reading(r, n) for r in records]) for n in have}
    claims, changed = cross_checked(main, alt)
    if have:
        ways = " and ".join(have.values())
        note = (f"Every verdict is checked against other readings of the same samples ({ways}): "
                + (f"**{len(changed)} of {len(claims)} get another answer** under one of them, so the counting rule, "
                   f"not the runs, decides them: not testable." if changed else
                   "no verdict gets another answer: the settings decided under each reading go the same way (a "
                   "reading under which a claim cannot be scored, or that decides more or fewer of its settings, is "
                   "named in its cell)."))
    else:
        note = ""
    _, failed = split_by_gate(records)
    for n, d in have.items():  # runs whose gate a reading decides: what a reader should know about the failures
        alt_records = [with_reading(r, n) for r in records]
        rescued = [r for r, _ in failed if gate(with_reading(r, n), alt_records).passed]
        if rescued:
            runs = _run_list(rescued, _experiment_names(records))
            note += (f" With {d}, {len(rescued)} of the {len(failed)} runs that fail their gate would pass it "
                     f"({runs}).")
    if lacking:
        note += (" " if note else "") + (f"Not checked against {' and '.join(lacking)}: that reading is not stored "
                                         f"for every run (records made before it existed).")
    return Findings(main.anchor, claims, main.notes + ([note] if note else []))


def _run_list(records: Sequence[dict], experiments: dict[str, str] | None = None) -> str:
    """'VAE 3, seeds 0, 2; VAE 5, seed 1': runs grouped by setting (values named as in :func:`_label`)."""
    by: dict[str, list[int]] = {}
    for r in records:
        by.setdefault(_label(r, experiments), []).append(int(r["seed"]))
    return "; ".join(f"{k}, seed{'s' if len(v) > 1 else ''} {', '.join(map(str, sorted(v)))}" for k, v in by.items())


@by_scope
def numerosity_findings(records: Sequence[dict], noun: str = "dots", key: str = "numerosity",
                        anchor: str = "findings-numerosity") -> Findings:
    """The paper's numerosity claims (Sec. 4.1.1), each checked on the runs that pass their gate and against the
    counter's alternative readings (:func:`robust`)."""
    return robust(_numerosity_findings(records, noun, key, anchor), records,
                  lambda recs: _numerosity_findings(recs, noun, key, anchor))


def _numerosity_findings(records: Sequence[dict], noun: str, key: str, anchor: str) -> Findings:
    passed, failed = split_by_gate(records)
    settings = A.by_setting(passed)
    why = gate_reasons(failed)
    skipped = _not_scored(records, passed)
    exact = [rule_not_always_exact(recs) for _, recs in settings]
    centred = [rule_centred(recs) for _, recs in settings]
    more = [rule_more_than_fewer(recs) for _, recs in settings]
    fams = {m: [recs for (mm, _), recs in settings if mm == m] for m in _families(passed)}
    grows = [rule_spread_grows(s) for s in fams.values() if len(s) >= 2]
    n = len(settings)
    names = [_label(recs[0]) for _, recs in settings]
    grown = [LABELS.get(m, m) for m, s in fams.items() if len(s) >= 2]
    claims = [
        Claim(f"{key}.not_always_exact", f"Generated images do not always have the trained number of {noun}",
              f"the trained count is the most frequent and is generated in less than {EXACT_SHARE:.0%} of samples "
              f"in {sum(o is True for o in exact)} of {n} settings{skipped}", judge(exact, why, settings=names)),
        Claim(f"{key}.centred", "The distribution is centred at the trained count",
              f"the mode is the trained count and the mean within {CENTRE_TOL} of it in "
              f"{sum(o is True for o in centred)} of {n} settings{skipped}", judge(centred, why, settings=names)),
        Claim(f"{key}.more", f"It is biased slightly towards more {noun}",
              f"more mass above than below the trained count in {sum(o is True for o in more)} of {n} settings, "
              f"fewer in {sum(o is False for o in more)}{skipped}",
              _with_reasons(judge(more, why, settings=names), leaning_reason(failed, noun))),
        Claim(f"{key}.spread_grows", "The spread grows with the count (as in human and monkey numerosity)",
              f"the sd rises with the trained count for {sum(o is True for o in grows)} of {len(grows)} families "
              f"with two or more scored counts",
              judge(grows, why, too_few="fewer than two trained counts scored", settings=grown)),
    ]
    per = "; ".join(_count_detail(model, value, recs) for (model, value), recs in settings)
    notes = [*_preset_note(records), gate_note(records, failed), *mode_gate_note(failed, noun)]
    return Findings(anchor, claims, notes + ([f"Scored settings: {per}."] if per else []))


def _leaning_runs(failed: Sequence[tuple[dict, Gate]]) -> tuple[list[dict], list[dict]]:
    """The runs the count gate leaves out only for their mode (measurable, but the trained count is not the most
    frequent, nor is 0): those whose most frequent count is above the trained one, and those below."""
    up: list[dict] = []
    down: list[dict] = []
    for r, _ in failed:
        if _measurable_reasons(r):
            continue
        mode, value = _count_mode(r), int(r["value"])
        if mode != value and mode != 0:  # mostly blank images: a model that failed, not a bias
            (up if mode > value else down).append(r)
    return up, down


def leaning_reason(failed: Sequence[tuple[dict, Gate]], noun: str = "dots") -> tuple[str, ...]:
    """The "biased towards more" claim's caveat: the runs the gate leaves out for their mode, named by the side they
    lean to (its verdict sees only runs whose mode is the trained count, so the strongest biases are not in it)."""
    up, down = _leaning_runs(failed)
    names = _experiment_names([r for r, _ in failed])
    kept = [(rs, side) for rs, side in ((up, "more"), (down, "fewer")) if rs]
    sides = [f"{len(rs)} run{'s' if len(rs) != 1 else ''} draw{'' if len(rs) != 1 else 's'} {side}"
             f"{f' {noun} than trained most often' if i == 0 else ''} ({_run_list(rs, names)})"
             for i, (rs, side) in enumerate(kept)]
    if not sides:
        return ()
    return (f"not in this verdict: the gate leaves out runs whose most frequent count is another (the strongest "
            f"biases): {', '.join(sides)}",)


def mode_gate_note(failed: Sequence[tuple[dict, Gate]], noun: str = "dots") -> list[str]:
    """Which way the runs lean that the count gate leaves out only for their mode (:func:`_leaning_runs`): per
    family, how many draw more and how many fewer most often. The gate asks for the trained count to be the mode,
    so it removes the runs with the strongest bias in either direction; a reader weighing the "more" claim should
    see where they went. Empty when none fails on its mode."""
    lean: dict[str, list[int]] = {}
    for side, rs in enumerate(_leaning_runs(failed)):
        for r in rs:
            lean.setdefault(r["model"], [0, 0])[side] += 1
    if not lean:
        return []
    parts = []
    for model in sorted(lean, key=_family_index):
        up, down = lean[model]
        side = " and ".join(x for x in (f"{up} more" if up else "", f"{down} fewer" if down else "") if x)
        parts.append(f"{LABELS.get(model, model)} {up + down} ({side})")
    n = sum(map(sum, lean.values()))
    return [f"Which way the left-out runs lean: {n} run{'s' if n != 1 else ''} fail the gate only because another "
            f"count (not 0) is the most frequent: the strongest biases, which the verdicts above do not see. Per "
            f"family, runs whose most frequent count is more or fewer {noun} than trained: {'; '.join(parts)}."]


def _count_detail(model: str, value: int, recs: Sequence[dict]) -> str:
    d = _mean_dist(recs)
    seeds = f"{len(recs)} seed{'s' if len(recs) != 1 else ''}"
    above, below = (float(d[value + 1:].sum() / d.sum()), float(d[:value].sum() / d.sum())) if d.sum() > 0 else (
        float("nan"), float("nan"))
    return (f"{LABELS.get(model, model)} on {value} ({seeds}): mean {_count_mean(d):.2f}, mode "
            f"{int(np.argmax(d))}, {_share_at(value)(d):.0%} exact, {above:.0%} more and {below:.0%} fewer")


def readings_table(records: Sequence[dict]) -> Table:
    """Per model and trained count (all seeds, gates not applied): the mean count, the mode and the share exactly at
    the trained count under each reading of the same samples (as counted; then each alternative reading the records
    store), so a reader sees what a counting rule changes."""
    names = [n for n, _ in EXPERIMENTS["numerosity"].robust_readings]
    words = dict(EXPERIMENTS["numerosity"].robust_readings)
    present = [n for n in names if records and all(n in r["result"].get("readings", {}) for r in records)]
    head = ["model", "trained", "seeds", "as counted"] + [words[n].split(" (")[0] for n in present]
    rows = []
    for (model, value), recs in A.by_setting(records):
        cells = []
        for n in [None, *present]:
            d = _mean_dist([r if n is None else with_reading(r, n) for r in recs])
            cells.append(f"mean {_count_mean(d):.2f}, mode {int(np.argmax(d))}, {_share_at(value)(d):.0%} exact"
                         if d.sum() > 0 else "nothing measured")
        rows.append([LABELS.get(model, model), str(value), str(len(recs)), *cells])
    return Table(head, rows, css="probe-table readings-table")


def summary_table(records: Sequence[dict]) -> Table:
    """Per model and trained count, over the seeds the figures show (:func:`shown_runs`: the passing ones where a
    setting has any): mean (± half-width of the 95% t interval over seeds; – with one seed, which shows no
    seed-to-seed variation), spread, mode, where the mass goes, the share of unmeasurable samples, and how many of
    all its seeds pass the training-health gate."""
    _, failed = split_by_gate(records)
    bad = {id(r) for r, _ in failed}
    rows = A.summary_rows(shown_runs(records)[0])
    for row in rows:
        recs = [r for r in records if r["model"] == row["model"] and r["value"] == row["value"]]
        row["gate"] = f"{sum(id(r) not in bad for r in recs)} of {len(recs)}"
    rows.sort(key=lambda r: (_family_index(r["model"]), r["value"]))
    cols = {"model": "model", "value": "trained", "seeds": "seeds", "gate": "seeds passing the gate",
            "mean": "mean", "mean_ci": "± 95% CI", "sd": "sd", "mode": "mode", "exact": "share exact",
            "below": "share fewer", "above": "share more", "zero": "share zero", "invalid": "unmeasurable",
            "steps": "iterations"}
    fmt = {"mean": ".2f", "mean_ci": ".2f", "sd": ".2f", "exact": ".0%", "below": ".0%", "above": ".0%",
           "zero": ".0%", "invalid": ".0%"}
    return table_from_rows(rows, cols, fmt)


def provenance_table(records: Sequence[dict]) -> Table:
    """Where each record in the figures came from (a record passed twice is listed once)."""
    records = list({r.get("key", id(r)): r for r in records}.values())
    cols = {"model": "model", "value": "trained", "seed": "seed", "preset": "preset", "device": "device",
            "iterations": "iterations", "converged_at": "converged at", "wall_s": "wall s", "torch": "torch",
            "code": "probe_utils", "commit": "commit", "created": "created (UTC)"}
    if len({r["experiment"] for r in records}) > 1:
        cols = {"experiment": "experiment", **cols}
    rows = A.provenance_rows(records)
    sizes = {k: h for k, h in (("width", "width"), ("pool_size", "training images"))
             if len({row[k] for row in rows}) > 1}  # shown only where the runs differ in it
    items = list(cols.items())
    at = list(cols).index("seed") + 1
    cols = dict(items[:at] + list(sizes.items()) + items[at:])
    return table_from_rows(rows, cols)


# ---------------------------------------------------------------------------------------------------------------
# Colour, size and location (Sec. 4.1.2-4.1.3)
# ---------------------------------------------------------------------------------------------------------------

def shape_table(records: Sequence[dict], centres: np.ndarray) -> Table:
    """Per model and trained value of a continuous feature, over the seeds the figures show (:func:`shown_runs`:
    the passing ones where a setting has any): mean, bias, spread, half-width and its right ÷ left flanks (the size
    claim's second reading), asymmetry (skewness is – where the response has no spread), unmeasurable share and how
    many of all its seeds pass the gate. The sd and the skewness the rules read are the bump's
    (:func:`probe_utils.analysis.response_shape`: stray samples far from the response left out, their share shown);
    the skewness over all samples is shown next to it."""
    _, failed = split_by_gate(records)
    bad = {id(r) for r, _ in failed}
    rows = A.shape_rows(shown_runs(records)[0], centres)
    for row in rows:
        recs = [r for r in records if r["model"] == row["model"] and r["value"] == row["value"]]
        row["gate"] = f"{sum(id(r) not in bad for r in recs)} of {len(recs)}"
    cols = {"model": "model", "value": "trained", "seeds": "seeds", "gate": "seeds passing the gate", "mean": "mean",
            "mean_ci": "± 95% CI", "bias": "bias", "bump_sd": "sd (bump)", "hwhm": "half-width",
            "hwhm_ratio": "right ÷ left flank", "bump_skewness": "skewness (bump)",
            "skewness": "skewness (all samples)", "stray_share": "strays",
            "mass_asymmetry": "mass right − left of mode", "invalid": "unmeasurable", "steps": "iterations"}
    fmt = {"mean": ".3f", "mean_ci": ".3f", "bias": "+.3f", "bump_sd": ".3f", "hwhm": ".3f", "hwhm_ratio": ".2f",
           "bump_skewness": "+.2f", "skewness": "+.2f", "stray_share": ".1%", "mass_asymmetry": "+.2f",
           "invalid": ".0%"}
    return table_from_rows(rows, cols, fmt)


def rule_red_centred(recs: Sequence[dict]) -> bool | None:
    """"The red response is centred at the trained proportion": |mean - trained| below :data:`RED_CENTRE_TOL` by
    more than the noise; False when it is above it by more than the noise."""
    value, c = float(recs[0]["value"]), _centres(recs[0])
    off: Stat = lambda d: abs(_shape_stat("mean", c)(d) - value)  # noqa: E731
    return within(off(_mean_dist(recs)), RED_CENTRE_TOL, noise(recs, off))


def saturated(recs: Sequence[dict]) -> str:
    """'' or why a response is saturated: at least :data:`SATURATED_SHARE` of its mass in the measurement's first
    bin (its floor) or last bin (its ceiling), where the measurement cannot show spread."""
    d = _mean_dist(recs)
    ends = [("floor", d[0]), ("ceiling", d[-1])]
    hit = [f"{share:.0%} at the {where}" for where, share in ends if share >= SATURATED_SHARE]
    return f"{_label(recs[0])}: " + ", ".join(hit) if hit else ""


def rule_sharper_at_extremes(settings: Sequence[Sequence[dict]]) -> bool | None:
    """"Red is sharper at 10% and 90% than in the middle (Weber's law)" (one family; one list of runs per trained
    value): the sd nearest 50% exceeds the sd at both extreme trained values by more than the noise. None with
    fewer than three trained values or when any of the three responses is saturated at the measurement's floor or
    ceiling (a response piled on the floor has a small sd whatever the model learned). The sd is its bump's (stray
    samples far from the response left out)."""
    if len(settings) < 3:
        return None
    by = {float(s[0]["value"]): s for s in settings}
    lo, mid, hi = _weber_values(by)
    if _weber_saturated(settings):
        return None
    sd = _shape_stat("bump_sd", _centres(settings[0][0]))
    sds = {v: sd(_mean_dist(by[v])) for v in (lo, mid, hi)}
    nz = max(noise(by[v], sd) for v in (lo, mid, hi))
    return beyond(sds[mid] - max(sds[lo], sds[hi]), nz)


def _weber_values(by: dict[float, Sequence[dict]]) -> tuple[float, float, float]:
    """The trained values the Weber rule compares: the lowest, the one nearest 50% and the highest."""
    lo, hi = min(by), max(by)
    return lo, min((v for v in by if v not in (lo, hi)), key=lambda v: abs(v - 0.5)), hi


def _weber_saturated(settings: Sequence[Sequence[dict]]) -> bool:
    """Whether :func:`rule_sharper_at_extremes` is undecided because one of the responses it compares (lowest,
    nearest 50%, highest trained value) is saturated at the measurement's floor or ceiling."""
    by = {float(s[0]["value"]): s for s in settings}
    return len(by) >= 3 and any(saturated(by[v]) for v in _weber_values(by))


def rule_symmetric(recs: Sequence[dict], key: str = "bump_skewness") -> bool | None:
    """"The response is symmetric": |skewness of its bump| (mean over seeds; stray samples far from the response
    left out, :func:`probe_utils.analysis.response_shape`) below :data:`SYMMETRIC_SKEW` by more than the noise. None
    when the skewness is undefined (sd = 0: a degenerate response is not symmetric, it is not a response).
    ``key="skewness"``: the same rule over all samples, strays included (the other reading the chapter shows)."""
    skew = _shape_stat(key, _centres(recs[0]))
    s = _seed_mean(recs, skew)
    return within(abs(s), SYMMETRIC_SKEW, noise(recs, skew)) if np.isfinite(s) else None


def rule_skewed_larger(recs: Sequence[dict], key: str = "bump_skewness") -> bool | None:
    """"Size is skewed towards larger objects": the skewness of the response's bump (mean over seeds) is positive by
    more than the noise; None when it is undefined (sd = 0). ``key="skewness"``: over all samples."""
    skew = _shape_stat(key, _centres(recs[0]))
    s = _seed_mean(recs, skew)
    return beyond(s, noise(recs, skew)) if np.isfinite(s) else None


def _log_flank_ratio(centres: np.ndarray) -> Stat:
    """log(right / left half-width at half maximum of the response's peak); NaN where a flank is undefined."""
    ratio = _shape_stat("hwhm_ratio", centres)
    return lambda d: float(np.log(r)) if np.isfinite(r := ratio(d)) and r > 0 else float("nan")


def rule_right_flank_longer(recs: Sequence[dict]) -> bool | None:
    """The other reading of "skewed towards larger": the peak's right flank (half-width at half maximum, the shape
    of the paper's Fig. 5) is longer than its left by more than the noise (log ratio, mean over seeds); None when
    a flank is undefined. Unlike the skewness, a few far samples do not move it."""
    flank = _log_flank_ratio(_centres(recs[0]))
    s = _seed_mean(recs, flank)
    return beyond(s, noise(recs, flank)) if np.isfinite(s) else None


def _relative_sd(settings: Sequence[Sequence[dict]]) -> tuple[float, float]:
    """Mean sd of the responses' bumps over settings divided by the span of trained values the experiment allows,
    and its noise."""
    exp = EXPERIMENTS[settings[0][0]["experiment"]]
    span = float(exp.allowed[1] - exp.allowed[0])
    sd = _shape_stat("bump_sd", exp.centres)
    return (float(np.mean([sd(_mean_dist(s)) for s in settings])) / span,
            float(np.mean([noise(s, sd) for s in settings])) / span)


def rule_sharper_than_red(red: Sequence[Sequence[dict]], other: Sequence[Sequence[dict]]) -> bool | None:
    """"Size and location responses are sharper than red's" (one family, one other feature): the sd relative to
    the range of trained values is smaller than red's by more than the noise."""
    if not red or not other:
        return None
    (r, r_noise), (o, o_noise) = _relative_sd(red), _relative_sd(other)
    return beyond(r - o, max(r_noise, o_noise))


def _settings(records: Sequence[dict]) -> list[list[dict]]:
    return [recs for _, recs in A.by_setting(records)]


def _strays(settings: Sequence[Sequence[dict]], rule: Callable[..., bool | None]) -> str:
    """'' or how much the skewness of these responses leaves out (their largest stray share, mean over seeds) and
    what ``rule`` says over all samples, strays included, where that differs."""
    shares = [_seed_mean(s, _shape_stat("stray_share", _centres(s[0]))) for s in settings]
    top = max((x for x in shares if np.isfinite(x)), default=0.0)
    if top <= 0:
        return ""
    bump = [rule(s) for s in settings]
    whole = [rule(s, key="skewness") for s in settings]
    other = (f"; over all samples, strays included: yes in {sum(o is True for o in whole)}, no in "
             f"{sum(o is False for o in whole)}, undecided in {sum(o is None for o in whole)}") if whole != bump \
        else "; the same over all samples"
    return (f"; skewness of each response's bump, stray samples far from it left out (at most {top:.1%} of a "
            f"response){other}")


def _counted_undecided(cause: tuple[str, Sequence[str]], undecided: Sequence[str]) -> str:
    """Why a rule's ``undecided`` settings (named) are undecided: ``cause`` (what, and the settings it applies to),
    the rest within the noise, each part naming its settings; the noise alone where the cause applies to none."""
    what, which = cause[0], [n for n in cause[1] if n in undecided]  # a decided setting needs no excuse
    if not which:
        return WITHIN_NOISE
    rest = [n for n in undecided if n not in which]
    return f"{what} ({_named(list(which))})" + (f"; {WITHIN_NOISE} ({_named(rest)})" if rest else "")


def _undecided(names: Sequence[str], outcomes: Sequence[bool | None]) -> list[str]:
    """The names of the settings whose outcome is undecided (None)."""
    return [n for n, o in zip(names, outcomes) if o is None]


def _skew_undecided(settings: Sequence[Sequence[dict]], outcomes: Sequence[bool | None]) -> str:
    """Why the undecided settings of a skewness rule are undecided: an undefined skewness (sd = 0; those settings
    named) or differences within the noise."""
    undefined = [_label(s[0]) for s in settings
                 if not np.isfinite(_seed_mean(s, _shape_stat("bump_skewness", _centres(s[0]))))]
    return _counted_undecided(("the sd is 0, so the skewness is undefined", undefined),
                              _undecided([_label(s[0]) for s in settings], outcomes))


def _size_by_ink_mass(size: Sequence[Sequence[dict]], why: tuple[str, ...]) -> tuple[dict[str, Verdict], str]:
    """The size claim read by the ink-mass radius (the size experiment's robust reading, which blur does not move):
    (its skewness and flank verdicts by name, what they show) where every scored run carries that reading; else no
    verdict, and the text says for how many runs it is stored."""
    name = EXPERIMENTS["pie_size"].robust_readings[0][0]
    runs = [r for s in size for r in s]
    if not runs:
        return {}, ""
    have = sum(name in r["result"].get("readings", {}) for r in runs)
    read = [[with_reading(r, name) for r in s if name in r["result"].get("readings", {})] for s in size]
    read = [s for s in read if s]
    out = [rule_skewed_larger(s) for s in read]
    flanks = [rule_right_flank_longer(s) for s in read]
    counts = (f"positive skewness in {sum(o is True for o in out)}, negative in {sum(o is False for o in out)}; "
              f"right flank longer in {sum(o is True for o in flanks)}, shorter in {sum(o is False for o in flanks)}")
    if have < len(runs):
        said = (f", not in the verdict: on those runs ({len(read)} setting{'s' if len(read) != 1 else ''})"
                f": {counts}") if have else ""
        return {}, (f"; not read by the ink-mass radius, which blur does not move: it is stored for {have} of "
                    f"{len(runs)} scored runs (records made before it existed){said}")
    names = [_label(s[0]) for s in read]
    return ({"by the ink-mass radius's skewness": judge(out, why, undecided=_skew_undecided(read, out),
                                                        settings=names),
             "by the ink-mass radius's flanks": judge(flanks, why, settings=names)},
            f"; by the ink-mass radius, which blur does not move: {counts}")


@by_scope
def pie_findings(records: dict[str, list[dict]], anchor: str = "findings-pie") -> Findings:
    """The paper's claims on colour, size and location (Sec. 4.1.2-4.1.3), checked on the runs that pass their
    gate."""
    every = [r for rs in records.values() for r in rs]
    passed, failed = split_by_gate(every)
    why_red, why_size, why_loc = (claim_reasons(every, failed, _of(f"pie_{n}"), f"{NO_RUNS} of the {n} experiment")
                                  for n in ("red", "size", "location"))
    kinds = {r["experiment"] for r in every}
    why_versus = (claim_reasons(every, failed, _of("pie_red", "pie_size", "pie_location"))
                  if "pie_red" in kinds and kinds & {"pie_size", "pie_location"}
                  else (f"{NO_RUNS} of red and of size or location",))
    by_exp = {n: [r for r in passed if r["experiment"] == n] for n in ("pie_red", "pie_size", "pie_location")}
    red, size, loc = (_settings(by_exp[n]) for n in ("pie_red", "pie_size", "pie_location"))
    fam_red = {m: [s for s in red if s[0]["model"] == m] for m in _families(by_exp["pie_red"])}
    centred = [rule_red_centred(s) for s in red]
    sharp = [rule_sharper_at_extremes(s) for s in fam_red.values() if len(s) >= 3]
    sharp_names = [LABELS.get(m, m) for m, s in fam_red.items() if len(s) >= 3]
    red_names, size_names, loc_names = ([_label(s[0]) for s in ss] for ss in (red, size, loc))
    sat = [x for s in red for x in [saturated(s)] if x]
    sym = [rule_symmetric(s) for s in red]
    larger = [rule_skewed_larger(s) for s in size]
    flanks = [rule_right_flank_longer(s) for s in size]
    by_ink, ink_txt = _size_by_ink_mass(size, why_size)
    loc_sym = [rule_symmetric(s) for s in loc]
    pairs = [(m, other, what) for other, what in ((size, "size"), (loc, "location"))
             for m in _families(r for s in other for r in s) if fam_red.get(m)]
    versus = [rule_sharper_than_red(fam_red[m], [s for s in other if s[0]["model"] == m]) for m, other, _ in pairs]
    versus_names = [f"{LABELS.get(m, m)} {what}" for m, _, what in pairs]
    sat_txt = f"; saturated: {', '.join(sat)}" if sat else ""
    claims = [
        Claim("pie.red_centred", "Red: the response is centred at the trained proportion",
              f"mean within {RED_CENTRE_TOL} of it in {sum(o is True for o in centred)} of {len(red)} settings"
              f"{_not_scored(records.get('pie_red', []), by_exp['pie_red'])}",
              judge(centred, why_red, settings=red_names)),
        Claim("pie.red_weber", "Red: sharper at the extremes (10%, 90%) than in the middle (Weber's law)",
              f"the bump's sd at both extreme trained values is below the one nearest 50% for "
              f"{sum(o is True for o in sharp)} of {len(sharp)} families with three or more scored values{sat_txt}",
              judge(sharp, why_red, too_few="fewer than three trained values scored", undecided=_counted_undecided(
                  ("a response it compares is saturated at the measurement's floor or ceiling",
                   [n for n, s in zip(sharp_names, (s for s in fam_red.values() if len(s) >= 3))
                    if _weber_saturated(s)]),
                  _undecided(sharp_names, sharp)), settings=sharp_names)),
        Claim("pie.red_symmetric", "Red: the response is symmetric",
              f"|skewness| < {SYMMETRIC_SKEW} in {sum(o is True for o in sym)} of {len(sym)} settings"
              f"{_not_scored(records.get('pie_red', []), by_exp['pie_red'])}{_strays(red, rule_symmetric)}",
              judge(sym, why_red, undecided=_skew_undecided(red, sym), settings=red_names)),
        Claim("pie.size_larger", "Size: skewed towards larger objects",
              f"positive skewness in {sum(o is True for o in larger)} of {len(larger)} settings, negative in "
              f"{sum(o is False for o in larger)}{_not_scored(records.get('pie_size', []), by_exp['pie_size'])}"
              f"{_strays(size, rule_skewed_larger)}; the peak's right flank (half-width at half maximum) longer in "
              f"{sum(o is True for o in flanks)}, shorter in {sum(o is False for o in flanks)}{ink_txt}",
              # a thin left tail moves the skewness, not the peak; blur could make one (it reads a disc smaller),
              # so the ink-mass radius, which blur does not move, checks both where every run carries it
              checked_verdict(judge(larger, why_size, undecided=_skew_undecided(size, larger), settings=size_names),
                              {"by the peak's flanks": judge(flanks, why_size, settings=size_names), **by_ink},
                              "by the bump's skewness",
                              "how the size is read decides it" if by_ink else "the shape statistic decides it")),
        Claim("pie.location_symmetric", "Location: fairly symmetric",
              f"|skewness| < {SYMMETRIC_SKEW} in {sum(o is True for o in loc_sym)} of {len(loc_sym)} settings"
              f"{_not_scored(records.get('pie_location', []), by_exp['pie_location'])}{_strays(loc, rule_symmetric)}",
              judge(loc_sym, why_loc, undecided=_skew_undecided(loc, loc_sym), settings=loc_names)),
        Claim("pie.sharper_than_red", "Size and location responses are sharper than red's",
              f"sd relative to the range of trained values below red's for {sum(o is True for o in versus)} of "
              f"{len(versus)} (family, feature) pairs",
              judge(versus, why_versus, too_few="needs red and size or location scored", settings=versus_names)),
    ]
    return Findings(anchor, claims, [*_preset_note(every), gate_note(every, failed)])


# ---------------------------------------------------------------------------------------------------------------
# Convolution and prototype enhancement (Sec. 4.2)
# ---------------------------------------------------------------------------------------------------------------

def convolution_inputs(records: dict[str, list[dict]]) -> tuple[list[dict], list[dict], list[tuple[dict, Gate]]]:
    """(single-value runs that pass their gate, mixture runs that pass theirs, the failed runs with their gates)."""
    every = [r for n in ("pie_red", "pie_red_mix") for r in records.get(n, [])]
    uni, uni_failed = split_by_gate(records.get("pie_red", []), every)
    mix, mix_failed = split_by_gate(records.get("pie_red_mix", []), every)
    return uni, mix, uni_failed + mix_failed


def convolution_rows(records: dict[str, list[dict]]) -> list[dict]:
    """:func:`probe_utils.analysis.convolution_rows` of the runs that pass their gates."""
    uni, mix, _ = convolution_inputs(records)
    return A.convolution_rows(uni, mix, EXPERIMENTS["pie_red"].centres) if mix else []


def convolution_table(rows: list[dict]) -> Table:
    """Per model and training mixture: distance between actual and predicted responses, and the prototype index."""
    cols = {"model": "model", "value": "trained red", "seeds": "seeds", "tv": "TV(actual, predicted)",
            "emd": "EMD", "actual_mid": "actual mass at midpoint", "predicted_mid": "predicted mass at midpoint",
            "ratio": "prototype index", "actual_mode": "actual mode"}
    fmt = {"tv": ".3f", "emd": ".3f", "actual_mid": ".3f", "predicted_mid": ".3f", "actual_mode": ".2f"}
    return table_from_rows([{**r, "ratio": A.prototype_index_text(r["ratio"])} for r in rows], cols, fmt)


def _mix_runs(row: dict, mixes: Sequence[dict]) -> list[dict]:
    return [r for r in mixes if r["model"] == row["model"] and r["value"] == row["value"]]


def rule_far_matches(row: dict, mix_runs: Sequence[dict]) -> bool | None:
    """"Far modes: the response is the convolution of the single-value responses with the training distribution":
    TV(actual, predicted) below :data:`CONVOLUTION_TV`; False at or above it when also above the mixture runs' own
    TV floor (:func:`tv_floor`)."""
    return tv_within(row["tv"], CONVOLUTION_TV, tv_floor(mix_runs))


def rule_prototype(row: dict, mix_runs: Sequence[dict]) -> bool | None:
    """"Close modes: more mass at their mean than convolution predicts": the actual mass in the midpoint window
    exceeds the predicted one by more than the noise of the actual mass."""
    lo, hi = row["window"]
    c = EXPERIMENTS["pie_red_mix"].centres
    inside = (c >= lo - 1e-9) & (c <= hi + 1e-9)
    mid: Stat = lambda d: float(d[inside].sum() / d.sum()) if d.sum() > 0 else float("nan")  # noqa: E731
    return beyond(row["actual_mid"] - row["predicted_mid"], noise(mix_runs, mid))


def rule_snap(row: dict) -> bool:
    """"Close modes snap together": the actual response's most likely value lies in the midpoint window."""
    return bool(row["mode_in_middle"])


@by_scope
def convolution_findings(records: dict[str, list[dict]], anchor: str = "findings-convolution") -> Findings:
    """The paper's claims of Sec. 4.2 on ``{"pie_red": ..., "pie_red_mix": ...}``: far modes combine like a linear
    filter, close modes merge towards their mean (prototype enhancement); only runs that pass their gates."""
    uni, mix, failed = convolution_inputs(records)
    rows = A.convolution_rows(uni, mix, EXPERIMENTS["pie_red"].centres) if mix else []
    why = gate_reasons(failed, [r for rs in records.values() for r in rs])
    far = [r for r in rows if r["gap"] > CLOSE_GAP]
    close = [r for r in rows if r["gap"] <= CLOSE_GAP]
    fits = [rule_far_matches(r, _mix_runs(r, mix)) for r in far]
    proto = [rule_prototype(r, _mix_runs(r, mix)) for r in close]
    snap = [rule_snap(r) for r in close]
    tv = lambda r: on_its_side(r["tv"], lambda t: t < CONVOLUTION_TV, 2, percent=False)  # noqa: E731
    far_tv = ", ".join(f"{LABELS.get(r['model'], r['model'])} {r['value']}: {tv(r)}" for r in far)
    ratios = ", ".join(f"{LABELS.get(r['model'], r['model'])} {r['value']}: {A.prototype_index_text(r['ratio'])}"
                       for r in close)
    far_names, close_names = ([f"{LABELS.get(r['model'], r['model'])} {r['value']}" for r in rs] for rs in (far, close))
    claims = [
        Claim("convolution.far", "Far modes: the response is the convolution of the unimodal responses with the "
              "training distribution", f"TV distance below {CONVOLUTION_TV} in {sum(o is True for o in fits)} of "
              f"{len(far)} settings ({far_tv or 'none scored'})", judge(fits, why, settings=far_names)),
        Claim("convolution.prototype", "Close modes: more mass at their mean than convolution predicts (prototype "
              "enhancement)", f"more actual than predicted mass in the midpoint window in "
              f"{sum(o is True for o in proto)} of {len(close)} settings (prototype index: {ratios or 'none scored'})",
              judge(proto, why, settings=close_names)),
        Claim("convolution.snap", "Close modes snap together: the most likely value lies between them",
              f"the actual mode lies in the midpoint window in {sum(snap)} of {len(close)} settings",
              judge(snap, why, settings=close_names)),
    ]
    every = [r for n in ("pie_red", "pie_red_mix") for r in records.get(n, [])]
    return Findings(anchor, claims, [*_preset_note(every), gate_note(every, failed)])


# ---------------------------------------------------------------------------------------------------------------
# Independence (Sec. 4.3)
# ---------------------------------------------------------------------------------------------------------------

def independence_values(experiment: str) -> tuple[float, ...]:
    """The three trained values of an independence experiment's studied feature."""
    feature = experiment.removeprefix("indep_")
    return tuple(pie_render.INDEPENDENCE_VALUES["radius" if feature == "size" else feature])


def _per_mode_sd(experiment: str, i: int) -> Stat:
    c, values = EXPERIMENTS[experiment].centres, independence_values(experiment)
    return lambda d: A.per_mode(d, c, values)[i]["sd"] if d.sum() > 0 else float("nan")


def rule_variance_rises(fewest: Sequence[dict], most: Sequence[dict]) -> bool | None:
    """"The variance rises slightly when the nuisance features are more random": the spread of each trained
    value's mode (sd within its window, :func:`probe_utils.analysis.per_mode`), averaged over the modes that keep
    at least :data:`MODE_MASS_MIN` of the mass in both runs, is larger with the most nuisance values than with the
    fewest by more than the noise. A lost mode is left out, not read as a smaller spread; None when no mode is
    kept in both."""
    exp = fewest[0]["experiment"]
    kept = modes_kept(fewest, most)
    if not kept:
        return None
    c, values = EXPERIMENTS[exp].centres, independence_values(exp)
    a, b = (A.per_mode(_mean_dist(x), c, values) for x in (fewest, most))
    diff = float(np.mean([b[i]["sd"] - a[i]["sd"] for i in kept]))
    nz = max(max(noise(fewest, _per_mode_sd(exp, i)), noise(most, _per_mode_sd(exp, i))) for i in kept)
    return beyond(diff, nz)


def modes_kept(fewest: Sequence[dict], most: Sequence[dict]) -> list[int]:
    """The trained values (their indices) whose mode keeps at least :data:`MODE_MASS_MIN` of the mass in the
    responses with the fewest and with the most nuisance values."""
    exp = fewest[0]["experiment"]
    c, values = EXPERIMENTS[exp].centres, independence_values(exp)
    a, b = (A.per_mode(_mean_dist(x), c, values) for x in (fewest, most))
    return [i for i in range(len(values)) if min(a[i]["mass"], b[i]["mass"]) >= MODE_MASS_MIN]


def mode_masses(experiment: str, dist: np.ndarray) -> np.ndarray:
    """A response's mass near each of the three trained values (windows halfway to the neighbouring values,
    :func:`probe_utils.analysis.mode_windows`) and, last, the mass outside every window; all zero when the
    response holds no mass."""
    d = np.asarray(dist, float)
    if d.sum() <= 0:
        return np.zeros(len(independence_values(experiment)) + 1)
    m = [x["mass"] for x in A.per_mode(d, EXPERIMENTS[experiment].centres, independence_values(experiment))]
    return np.array(m + [max(0.0, 1.0 - sum(m))])


def mass_shift(runs: Sequence[dict]) -> float:
    """The largest share of the mass that moves between the trained values (and outside them) from the response
    with the fewest nuisance values to the response with any other number of them (responses averaged over seeds;
    TV distance between their :func:`mode_masses`). Unlike the TV distance between the whole distributions, it does
    not count a mode that widens or narrows in place; NaN with fewer than two numbers of nuisance values."""
    exp = runs[0]["experiment"]
    ks = sorted({int(r["value"]) for r in runs})
    masses = {k: mode_masses(exp, _mean_dist([r for r in runs if int(r["value"]) == k])) for k in ks}
    shifts = [_tv(masses[ks[0]], masses[k]) for k in ks[1:]]
    return float(np.nanmax(shifts)) if shifts and np.isfinite(shifts).any() else float("nan")


def rule_unchanged(shift: float, runs: Sequence[dict]) -> bool | None:
    """"The learned distribution of a feature is fairly independent of how many values the others take" (the
    paper adds that only the variance rises, which :func:`rule_variance_rises` judges): less than
    :data:`INDEPENDENCE_MASS_TV` of the mass moves between the trained values (:func:`mass_shift`); False at or
    above it when also above the runs' own floor for that distance (:func:`tv_floor` of their
    :func:`mode_masses`, the largest over the numbers of nuisance values)."""
    exp = runs[0]["experiment"] if runs else ""
    floor = max((tv_floor([r for r in runs if r["value"] == k], coarse=lambda d: mode_masses(exp, d))
                 for k in {r["value"] for r in runs}), default=0.0)
    return tv_within(shift, INDEPENDENCE_MASS_TV, floor)


def _independence_scored(records: dict[str, list[dict]]) -> tuple[list[tuple[str, str, list[dict]]],
                                                                   list[tuple[dict, Gate]]]:
    """Per (experiment, model): the runs that pass their gate when the fewest number of nuisance values is among
    them and at least two numbers are; and every failed run."""
    out, failed_all = [], []
    for name, recs in records.items():
        passed, failed = split_by_gate(recs)
        failed_all += failed
        for m in _families(recs):
            mine = [r for r in passed if r["model"] == m]
            fewest = min(int(r["value"]) for r in recs if r["model"] == m)
            ks = {int(r["value"]) for r in mine}
            if fewest in ks and len(ks) >= 2:
                out.append((name, m, mine))
    return out, failed_all


def independence_table(records: dict[str, list[dict]]) -> Table:
    """Per studied feature and model, over the runs the figures show (:func:`shown_runs`: a setting's passing runs
    where it has any): how far the responses for different numbers of nuisance values are from the one with the
    fewest, how the spread of the whole response and of each trained value's mode changes, and how many of all its
    runs pass the gate."""
    rows = []
    for name, recs in records.items():
        _, failed = split_by_gate(recs)
        c = EXPERIMENTS[name].centres
        shown = shown_runs(recs)[0]
        for r in A.independence_rows(shown, c):
            every = [x for x in recs if x["model"] == r["model"]]
            mine = [x for x in shown if x["model"] == r["model"]]
            ends = [[x for x in mine if x["value"] == k] for k in (r["ks"][0], r["ks"][-1])]
            modes = [A.per_mode(d, c, independence_values(name)) for d in map(_mean_dist, ends) if d.sum() > 0]
            rows.append({"feature": EXPERIMENTS[name].feature, "model": r["model"], "seeds": r["seeds"],
                         "ks": ", ".join(map(str, r["ks"])), "shift": mass_shift(mine), "max_tv": r["max_tv"],
                         "max_emd": r["max_emd"],
                         "sd_first": r["rows"][0]["sd"], "sd_last": r["rows"][-1]["sd"],
                         "mode_sd": " / ".join(f"{a['sd']:.3f}→{b['sd']:.3f}" if b["mass"] >= MODE_MASS_MIN else
                                               f"{a['sd']:.3f}→lost" for a, b in zip(*modes)) if len(modes) == 2
                         else "–",
                         "rho": r["spearman_rho"], "p": _p_value(r["p_value"]), "v": r["cramers_v"],
                         "gate": f"{len(every) - sum(f['model'] == r['model'] for f, _ in failed)} of {len(every)}"})
    cols = {"feature": "feature", "model": "model", "seeds": "seeds", "gate": "runs passing the gate",
            "ks": "nuisance values k", "shift": "largest mass moved between trained values",
            "max_tv": "largest TV to fewest k", "max_emd": "largest EMD",
            "sd_first": "sd, fewest k", "sd_last": "sd, most k", "mode_sd": "sd per trained value, fewest → most k",
            "rho": "Spearman ρ(k, sd)", "p": "χ² p", "v": "Cramér's V"}
    fmt = {"shift": ".3f", "max_tv": ".3f", "max_emd": ".3f", "sd_first": ".3f", "sd_last": ".3f", "rho": "+.2f",
           "p": ".2g", "v": ".3f"}
    return table_from_rows(rows, cols, fmt)


@by_scope
def independence_findings(records: dict[str, list[dict]], anchor: str = "findings-independence") -> Findings:
    """The paper's claims of Sec. 4.3, checked on the runs that pass their gates (the run with the fewest nuisance
    values must reproduce the three trained values)."""
    scored, failed = _independence_scored(records)
    why = gate_reasons(failed, [r for rs in records.values() for r in rs])
    same, wider, detail, sds, names, lost = [], [], [], [], [], []
    for name, model, runs in scored:
        (stat,) = A.independence_rows(runs, EXPERIMENTS[name].centres)
        ks = stat["ks"]
        shift = mass_shift(runs)
        same.append(rule_unchanged(shift, runs))
        ends = [r for r in runs if r["value"] == ks[0]], [r for r in runs if r["value"] == ks[-1]]
        wider.append(rule_variance_rises(*ends))
        label = f"{EXPERIMENTS[name].feature} {LABELS.get(model, model)}"
        lost += [] if modes_kept(*ends) else [label]
        detail.append(f"{label} {on_its_side(shift, lambda x: x < INDEPENDENCE_MASS_TV, 2, percent=False)}")
        names.append(label)
        sds.append(f"{label}: {_ok(wider[-1])}")
    every = [r for rs in records.values() for r in rs]
    claims = [
        Claim("independence.unchanged", "The learned distribution of each feature is fairly independent of how many "
              "values the other features take (1–50)", f"less than {INDEPENDENCE_MASS_TV:.0%} of the mass moves "
              f"between the trained values from the fewest nuisance values to more in {sum(o is True for o in same)} "
              f"of {len(scored)} (feature, model) settings ({', '.join(detail) or 'none scored'}; a mode that only "
              f"widens, as the next claim expects, moves none)", judge(same, why, settings=names)),
        Claim("independence.variance_rises", "The variance rises slightly when the nuisance features are more "
              "random", f"the spread of each trained value's mode is larger with the most nuisance values than with "
              f"the fewest in {sum(o is True for o in wider)} of {len(scored)} settings ({'; '.join(sds) or 'none'})",
              judge(wider, why, undecided=_counted_undecided(
                  ("no trained value keeps its mode in both runs", lost), _undecided(names, wider)),
                  settings=names)),
    ]
    return Findings(anchor, claims, [*_preset_note(every), gate_note(every, failed)])


# ---------------------------------------------------------------------------------------------------------------
# Combinations (Sec. 5, App. A Fig. 25)
# ---------------------------------------------------------------------------------------------------------------


def _default(r: dict, key: str) -> bool:
    """Whether a run used its preset's own network width (``key="width"``) or training-set size (``"pool_size"``)."""
    return (r.get("params") or {}).get(key) == getattr(PRESETS[r["preset"]], key)


def combination_rows_by(records: dict[str, list[dict]], by: str = "model", model: str | None = None,
                        default_only: bool = True) -> dict[str, list[dict]]:
    """:func:`probe_utils.analysis.combination_rows` per combinations experiment, over the runs a figure shows
    (:func:`shown_runs`: a setting's passing runs where it has any), each row with ``gate_failed``: how many of the
    runs behind it fail their training-health gate (all of them, or none), and ``left_out``: how many failing runs
    its numbers leave out. ``default_only``: only runs at the preset's own width and number of training images;
    ``model``: only that family."""
    out = {}
    for name, recs in records.items():
        exp = EXPERIMENTS[name]
        unique = {r.get("key", id(r)): r for r in recs}.values()  # the same run may be passed twice
        keep = [r for r in unique if (model is None or r["model"] == model) and (
            all(_default(r, k) for k in ("width", "pool_size")) if default_only else
            # comparing widths: default data size only, and the other way round
            by == "model" or _default(r, "pool_size" if by == "width" else "width"))]
        if keep:
            keep, left = shown_runs(keep, list(unique))
            rows = A.combination_rows(keep, int(np.prod(exp.grid)), by=by)
            for row in rows:  # how many of the row's runs are not scored (the figures and tables mark them)
                behind = lambda rs: [r for r in rs if r["model"] == row["model"] and len(  # noqa: E731
                    r["result"]["train_support"]) == row["n_train"] and (by == "model" or r["params"][by] ==
                                                                       row["group"])]
                row["gate_failed"] = sum(not gate(r, list(unique)).passed for r in behind(keep))
                row["left_out"] = len(behind(left))
            if by != "model":
                for row in rows:
                    row["group"] = f"{'width' if by == 'width' else 'images'} {row['group']}"
            out[exp.dataset] = rows
    return out


def combination_table(rows: dict[str, list[dict]], group: str = "model") -> Table:
    """Precision, recall and novel mass per data set, group and number of training combinations, over the passing
    runs where a row has any (:func:`combination_rows_by`): how many failing runs that leaves out, and how many of
    the runs behind the numbers fail their training-health gate (all, or none: then shown, not scored)."""
    flat = [{"dataset": d, **r, "group": LABELS.get(r["group"], r["group"]) if group == "model" else r["group"],
             "precision_ci": _interval(r["precision_lo"], r["precision_hi"])} for d, rs in rows.items() for r in rs]
    cols = {"dataset": "data set", "group": group.replace("_", " "), "n_train": "training combinations",
            "runs": "seeds", "precision": "precision", "precision_ci": "precision's 95% interval over seeds",
            "recall": "recall", "novel_mass": "mass on new combinations", "chance_precision": "uniform precision",
            "left_out": "failing runs left out (the rest pass)", "gate_failed": "runs failing their gate (not scored)"}
    if group != "model":
        cols = {"dataset": "data set", "model": "model", **{k: v for k, v in cols.items() if k != "dataset"},
                "n_parameters": "parameters"}
        cols["group"] = "network width" if group == "width" else "training images"
    fmt = {"precision": ".2f", "recall": ".2f", "novel_mass": ".2f", "chance_precision": ".3f", "n_parameters": ",.0f"}
    return table_from_rows(flat, cols, fmt)


def _interval(lo: float, hi: float) -> str | None:
    """'0.08–0.31' (None for a single seed, which has no interval)."""
    return None if not (np.isfinite(lo) and np.isfinite(hi)) else f"{lo:.2f}–{hi:.2f}"


#: per combinations experiment, the grid axes its measurement can misplace by a step at the `cpu` scale (the pie
#: grid's x and y steps are 0.05 half-widths, 0.8 px at 32 px), which the tolerant reading forgives
TOLERANT_AXES: dict[str, tuple[str, ...]] = {"pie_combos": ("x", "y")}
TOLERANT_READING = "pies within one grid step in x and y counted as on the training combination"


def _near(record: dict, tolerant: bool) -> np.ndarray | None:
    """The ids the tolerant reading counts as training combinations for this run (None: the exact reading, or an
    experiment without :data:`TOLERANT_AXES`)."""
    axes = TOLERANT_AXES.get(record["experiment"]) if tolerant else None
    if not axes:
        return None
    exp = EXPERIMENTS[record["experiment"]]
    return A.near_combinations(record["result"]["train_support"], exp.grid, [exp.axes.index(a) for a in axes])


def _precision(dist: np.ndarray, n: int, support: Sequence[int], invalid: float = 0.0, near: Any = None) -> float:
    return A.support_precision_recall(A.distribution_ids(dist, n, invalid), support, near=near)["precision"]


def _precision_drift(runs: Sequence[dict], tolerant: bool = False) -> float:
    """Mean over runs of |precision of the last probe - precision of the probe before| (NaN without probes)."""
    moves = []
    for r in runs:
        probes = _probe_dists(r)
        n = int((r.get("params") or {}).get("probe_samples") or 1000)
        if len(probes) >= 2:
            sup, near = r["result"]["train_support"], _near(r, tolerant)
            moves.append(abs(_precision(probes[-1], n, sup, near=near) - _precision(probes[-2], n, sup, near=near)))
    moves = [m for m in moves if np.isfinite(m)]
    return float(np.mean(moves)) if moves else float("nan")


def combination_points(records: Sequence[dict], tolerant: bool = False) -> list[dict]:
    """Per (experiment, model, width, training-set size, number of training combinations), over seeds: mean
    ``precision`` and ``recall``, ``chance`` precision (m / all combinations: a model uniform over every
    combination), ``lift`` = (precision - chance) / (1 - chance), and ``noise`` (the larger of the t half-width
    over seeds and the precision's end-of-training drift; 0 when neither is known). ``tolerant``: precision and
    its chance under :data:`TOLERANT_READING` (experiments of :data:`TOLERANT_AXES`; the others as they are)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        p = r.get("params") or {}
        key = (r["experiment"], r["model"], p.get("width"), p.get("pool_size"), len(r["result"]["train_support"]))
        groups.setdefault(key, []).append(r)
    out = []
    for (name, model, width, pool, m), runs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0][:2]))
                                                      + tuple(x or 0 for x in kv[0][2:])):
        total = int(np.prod(EXPERIMENTS[name].grid))
        prs = [A.support_precision_recall(A.record_ids(r), r["result"]["train_support"], total,
                                          near=_near(r, tolerant)) for r in runs]
        precisions = [x["precision"] for x in prs]
        precision, chance = _nanmean(precisions), float(np.mean([x["chance_precision"] for x in prs]))
        known = [x for x in (A.half_width(precisions), _precision_drift(runs, tolerant)) if np.isfinite(x)]
        out.append({"experiment": name, "model": model, "width": width, "pool_size": pool, "n_train": m,
                    "runs": runs, "precision": precision, "recall": _nanmean(x["recall"] for x in prs),
                    "chance": chance, "lift": (precision - chance) / (1 - chance) if chance < 1 else float("nan"),
                    "noise": max(known) if known else 0.0,
                    "default": all(_default(runs[0], k) for k in ("width", "pool_size"))})
    return out


def rule_recall_high(point: dict) -> bool | None:
    """"Recall is very high: every training combination is generated": recall at least :data:`RECALL_HIGH`."""
    return bool(point["recall"] >= RECALL_HIGH) if np.isfinite(point["recall"]) else None


def above_chance(point: dict) -> bool:
    """Whether the precision is above chance (m / all combinations): lift at least :data:`ABOVE_CHANCE_LIFT` and
    precision - noise above chance."""
    return bool(point["lift"] >= ABOVE_CHANCE_LIFT and point["precision"] - point["noise"] > point["chance"])


def rule_precision_falls(fewest: dict, most: dict) -> bool | None:
    """"Precision falls as the training set holds more combinations": the lift over chance, (precision - m/total)
    / (1 - m/total), is lower at the most combinations than at the fewest by more than the noise. Raw precision
    would mislead: chance precision m/total rises with m."""
    scale = 1 - max(fewest["chance"], most["chance"])
    return beyond(fewest["lift"] - most["lift"], max(fewest["noise"], most["noise"]) / max(scale, 1e-9))


def rule_memorised(point: dict) -> bool | None:
    """"A few combinations are memorised almost exactly": precision at the fewest combinations above
    :data:`PRECISION_MEMORISED` by more than the noise; None when chance precision alone reaches it."""
    if not np.isfinite(point["precision"]) or point["chance"] >= PRECISION_MEMORISED:
        return None
    return beyond(point["precision"] - PRECISION_MEMORISED, point["noise"])


def rule_size_invariant(points: Sequence[dict]) -> bool | None:
    """"The curves do not depend on the network (data-set) size" (one model, one number of combinations, two or
    more sizes): None unless every size is above chance (two models at chance agree for no reason); True when the
    range of precision across sizes is below :data:`SIZE_INVARIANT`; False when it is at or above it and above
    twice the largest noise (the range two noisy estimates show alone)."""
    if len(points) < 2 or not all(above_chance(p) for p in points):
        return None
    spread = float(np.ptp([p["precision"] for p in points]))
    return tv_within(spread, SIZE_INVARIANT, 2 * max(p["noise"] for p in points))


def _by(points: Sequence[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for p in points:
        out.setdefault(tuple(p[k] for k in keys), []).append(p)
    return out


def _sized_runs(points: Sequence[dict], vary: str) -> list[dict]:
    """The runs of the (experiment, model, number of combinations) settings with two or more values of ``vary``
    (``width`` or ``pool_size``), the other setting at the preset's own value: what a size claim rests on."""
    fixed = "pool_size" if vary == "width" else "width"
    keep = [p for p in points if _default(p["runs"][0], fixed)]
    return [r for group in _by(keep, ("experiment", "model", "n_train")).values()
            if len({p[vary] for p in group}) >= 2 for p in group for r in p["runs"]]


def _size_outcomes(points: Sequence[dict], vary: str) -> tuple[list[bool | None], list[str], list[str], list[str]]:
    """Size-invariance outcomes per (experiment, model, number of combinations) across values of ``vary``
    (``width`` or ``pool_size``), the other setting at the preset's own value; what each shows, and its label; and
    the labels of those where a size is at chance precision (its lift below :data:`ABOVE_CHANCE_LIFT`, which leaves
    the rule undecided)."""
    fixed = "pool_size" if vary == "width" else "width"
    keep = [p for p in points if _default(p["runs"][0], fixed)]
    outcomes, txt, names, at_chance = [], [], [], []
    for (name, model, m), group in _by(keep, ("experiment", "model", "n_train")).items():
        if len({p[vary] for p in group}) < 2:
            continue
        outcomes.append(rule_size_invariant(group))
        names.append(f"{EXPERIMENTS[name].dataset} {LABELS.get(model, model)} at {m}")
        # at chance by its lift; a size above it whose noise reaches chance is undecided by the noise instead
        at_chance += [names[-1]] if any(not p["lift"] >= ABOVE_CHANCE_LIFT for p in group) else []
        txt.append(f"{names[-1]}: "
                   + ", ".join(f"{p[vary]}: {p['precision']:.3f} (chance {p['chance']:.3f})" for p in group))
    return outcomes, txt, names, at_chance


@by_scope
def combination_findings(records: dict[str, list[dict]], anchor: str = "findings-combinations") -> Findings:
    """The paper's claims of Sec. 5 (pie and three-MNIST) and App. A (Fig. 25), on the runs that pass their gate,
    each checked against :data:`TOLERANT_READING` (:func:`cross_checked`) where runs of :data:`TOLERANT_AXES`'s
    experiments are scored."""
    main = _combination_findings(records, anchor)
    every = _all_records(records)
    passed, failed = split_by_gate(every)
    rescued = [r for r, _ in failed if r["experiment"] in TOLERANT_AXES and not _measurable_reasons(r)
               and not _measurable_reasons(ref := reference_run(r, every))
               and train_mass(ref, tolerant=True) >= TRAIN_MASS_MIN]
    rescue = (f"{len(rescued)} of the {len(failed)} runs that fail their gate would pass it "
              f"({_run_list(rescued, _experiment_names(every))})" if rescued else "")
    if not any(r["experiment"] in TOLERANT_AXES for r in passed):
        return main if not rescue else Findings(main.anchor, main.claims, [
            *main.notes, f"Counting a generated pie within one grid step of a training combination in x and y as on "
                         f"it, {rescue}: the gates count exact combinations."])
    tolerant = _combination_findings(records, anchor, tolerant=True)
    claims, changed = cross_checked(main, {TOLERANT_READING: tolerant}, "counting exact combinations")
    sizes = sorted({int((r.get("params") or {}).get("image_size") or 64) for r in every
                    if r["experiment"] in TOLERANT_AXES})
    step = pie_render.SPACING["x"]
    px = " or ".join(f"{step * n / 2:.1f} px at {n}×{n}" for n in sizes)
    note = (f"Every verdict is checked against a reading that counts a generated pie within one grid step of a "
            f"training combination in x and y as on it (a step is {step} half-widths: {px}), with chance precision "
            f"widened to match: "
            + (f"**{len(changed)} of {len(claims)} get another answer**, so the grid's resolution, not the runs, "
               f"decides them: not testable." if changed else
               "no verdict gets another answer (a claim whose verdict differs without changing its answer names "
               "the other reading in its cell).") + (f" Counted that way, {rescue}." if rescue else ""))
    return Findings(main.anchor, claims, [*main.notes, note])


def _combination_findings(records: dict[str, list[dict]], anchor: str = "findings-combinations",
                          tolerant: bool = False) -> Findings:
    """:func:`combination_findings` under one reading (exact, or ``tolerant``: :data:`TOLERANT_READING`)."""
    every = list({r.get("key", id(r)): r for rs in records.values() for r in rs}.values())
    passed, failed = split_by_gate(every)
    why = claim_reasons(every, failed, lambda r: all(_default(r, k) for k in ("width", "pool_size")),
                        f"{NO_RUNS} at the preset's own network width and number of training images")
    points = combination_points(passed, tolerant)
    main = [p for p in points if p["default"]]
    curves = [sorted((p for p in g if np.isfinite(p["precision"])), key=lambda p: p["n_train"])
              for g in _by(main, ("experiment", "model")).values()]
    recall = [rule_recall_high(p) for p in main]
    falls = [rule_precision_falls(c[0], c[-1]) for c in curves if len(c) >= 2]
    memo = [rule_memorised(c[0]) for c in curves if c]
    point_names = [f"{EXPERIMENTS[p['experiment']].dataset} {LABELS.get(p['model'], p['model'])} at {p['n_train']}"
                   for p in main]
    pair_names = [f"{EXPERIMENTS[c[0]['experiment']].dataset} {LABELS.get(c[0]['model'], c[0]['model'])}"
                  for c in curves if c]
    falls_names = [n for n, c in zip(pair_names, [c for c in curves if c]) if len(c) >= 2]
    falls_txt = ", ".join(f"{EXPERIMENTS[c[0]['experiment']].dataset} {LABELS.get(c[0]['model'], c[0]['model'])} "
                          f"{c[0]['lift']:.2f} at {c[0]['n_train']} → {c[-1]['lift']:.2f} at {c[-1]['n_train']}"
                          for c in curves if len(c) >= 2)
    claims = [
        Claim("combinations.recall", "Recall is very high: every training combination is generated",
              f"recall ≥ {RECALL_HIGH} in {sum(o is True for o in recall)} of {len(main)} (data set, model, number "
              f"of combinations) settings", judge(recall, why, settings=point_names)),
        Claim("combinations.precision_falls", "Precision falls as the training set holds more combinations (new "
              "combinations appear)", f"precision's lift over chance, (precision − m/total) / (1 − m/total), lower "
              f"at the most combinations than at the fewest for {sum(o is True for o in falls)} of {len(falls)} "
              f"(data set, model) pairs ({falls_txt or 'none scored'})", judge(falls, why, settings=falls_names)),
        Claim("combinations.memorised", "A few combinations (10–20) are memorised almost exactly",
              f"precision above {PRECISION_MEMORISED} at the fewest combinations for {sum(o is True for o in memo)} "
              f"of {len(memo)} (data set, model) pairs",
              judge(memo, why, settings=pair_names, undecided=_counted_undecided(
                  ("chance precision alone reaches it", [n for n, c in zip(pair_names, [c for c in curves if c])
                                                         if c[0]["chance"] >= PRECISION_MEMORISED]),
                  _undecided(pair_names, memo)))),
    ]
    for vary, what in (("width", "network size (Fig. 25)"), ("pool_size", "data-set size")):
        outcomes, txt, names, at_chance = _size_outcomes(points, vary)
        sized = {id(r) for r in _sized_runs(combination_points(every), vary)}
        sizes = "network widths" if vary == "width" else "training-set sizes"
        why_size = claim_reasons(every, failed, lambda r: id(r) in sized,  # noqa: B023 (used at once)
                                 f"{NO_RUNS} at other {sizes}")
        why_size = why_size or (() if outcomes else (f"no scored runs at other {sizes}",))
        claims.append(Claim(f"combinations.{vary}", f"The curves do not depend on the {what}",
                            f"range of precision across them below {SIZE_INVARIANT}, every size above chance, at "
                            f"{sum(o is True for o in outcomes)} of {len(outcomes)} (data set, model, number of "
                            f"combinations) points ({'; '.join(txt) or 'none'})",
                            judge(outcomes, why_size, settings=names, undecided=_counted_undecided(
                                ("a size is at chance precision", at_chance), _undecided(names, outcomes)))))
    return Findings(anchor, claims, [*_preset_note(every), gate_note(every, failed)])


# ---------------------------------------------------------------------------------------------------------------
# CLEVR: numerosity and shape-colour pairs (Fig. 3 middle, Fig. 9 / 23)
# ---------------------------------------------------------------------------------------------------------------

def clevr_pair_rows(records: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """:func:`probe_utils.analysis.pair_grid_rows` per pair grid, over the runs a figure shows (:func:`shown_runs`:
    a setting's passing runs where it has any)."""
    every = [r for n, rs in records.items() if n.startswith("clevr_pairs") for r in rs]
    return {n: A.pair_grid_rows(shown_runs(rs, every)[0], EXPERIMENTS[n].grid) for n, rs in records.items()
            if n.startswith("clevr_pairs") and rs}


def clevr_pair_table(rows: dict[str, list[dict]]) -> Table:
    """Per grid, rare attribute and model: marginal distances, the rare line's mass and how much of it is new."""
    flat = [{"grid": n.rsplit("_", 1)[1], **r, "tv_shape": r["marginal_tv"][0], "tv_color": r["marginal_tv"][1]}
            for n, rs in rows.items() for r in rs]
    cols = {"grid": "grid", "rare": "rare", "model": "model", "seeds": "seeds", "tv_shape": "TV shape-pair marginal",
            "tv_color": "TV colour-pair marginal", "rare_share_train": "rare line, training share",
            "rare_share": "rare line, generated share", "rare_novel": "rare line: share on new cells",
            "rare_even": "… if spread evenly", "novel_mass": "all new cells", "invalid": "unmeasurable"}
    fmt = {k: ".2f" for k in ("tv_shape", "tv_color", "rare_share_train", "rare_share", "rare_novel", "rare_even",
                              "novel_mass")}
    fmt["invalid"] = ".0%"
    return table_from_rows(flat, cols, fmt)


def rule_marginals(row: dict) -> bool | None:
    """"The marginals are preserved": the TV distance of both marginals to the training ones below
    :data:`MARGINAL_TV`."""
    tv = max(row["marginal_tv"])
    return bool(tv < MARGINAL_TV) if np.isfinite(tv) else None


def rule_few_novel(row: dict) -> bool | None:
    """4x4: "the rare shape pair (colour pair) gets very few new colours (shapes)": less than :data:`FEW_NOVEL`
    of the rare line's generated mass on new cells."""
    return bool(row["rare_novel"] < FEW_NOVEL) if np.isfinite(row["rare_novel"]) else None


def rule_even(row: dict) -> bool | None:
    """9x9: "it takes all colours (shapes) almost evenly": the rare line's new cells get at least
    :data:`EVEN_SHARE` of the share they would get if it were spread evenly."""
    return bool(row["rare_novel"] >= EVEN_SHARE * row["rare_even"]) if np.isfinite(row["rare_novel"]) else None


@by_scope
def clevr_findings(records: dict[str, list[dict]], anchor: str = "findings-clevr") -> Findings:
    """The paper's CLEVR claims (Fig. 3 middle, Fig. 9 / 23) on the runs that pass their gates."""
    num = numerosity_findings(records.get("clevr_numerosity", []), noun="objects", key="clevr_numerosity")
    pairs = {n: rs for n, rs in records.items() if n.startswith("clevr_pairs")}
    every = [r for rs in pairs.values() for r in rs]
    passed, failed = split_by_gate(every)
    why, why_4, why_9 = (claim_reasons(every, failed, _of(*names), f"{NO_RUNS} of the {grid} pair grid")
                         for names, grid in ((tuple(pairs), "shape–colour"), (("clevr_pairs_4x4",), "4×4"),
                                             (("clevr_pairs_9x9",), "9×9")))
    rows = [(n.rsplit("_", 1)[1], r) for n, rs in clevr_pair_rows(
        {n: [r for r in passed if r["experiment"] == n] for n in pairs}).items() for r in rs]
    kept = [rule_marginals(r) for _, r in rows]
    label = lambda g, r: f"{g} {LABELS.get(r['model'], r['model'])} rare {r['rare']}"  # noqa: E731
    few = [rule_few_novel(r) for g, r in rows if g == "4x4"]
    even = [rule_even(r) for g, r in rows if g == "9x9"]
    novel = lambda r, g: on_its_side(r["rare_novel"], lambda x: x < FEW_NOVEL if g == "4x4" else True, 2,  # noqa
                                     percent=False)
    txt = lambda g: ", ".join(f"{LABELS.get(r['model'], r['model'])} rare {r['rare']} {novel(r, g)}"  # noqa
                              for gg, r in rows if gg == g) or "none scored"
    claims = num.claims + [
        Claim("clevr_pairs.marginals", "Shape–colour pairs: the marginals are preserved",
              f"TV of both marginals below {MARGINAL_TV} in {sum(o is True for o in kept)} of {len(rows)} settings",
              judge(kept, why, settings=[label(g, r) for g, r in rows])),
        Claim("clevr_pairs.few_4x4", "4×4: the rare shape pair (colour pair) gets very few new colours (shapes)",
              f"share of its generated mass on new cells below {FEW_NOVEL} in {sum(o is True for o in few)} of "
              f"{len(few)} settings ({txt('4x4')})",
              judge(few, why_4, settings=[label(g, r) for g, r in rows if g == "4x4"])),
        Claim("clevr_pairs.even_9x9", "9×9: it takes all colours (shapes) almost evenly",
              f"new cells get at least {EVEN_SHARE:.0%} of their even share in {sum(o is True for o in even)} of "
              f"{len(even)} settings ({txt('9x9')})",
              judge(even, why_9, settings=[label(g, r) for g, r in rows if g == "9x9"])),
    ]
    notes = num.notes + ([gate_note(every, failed)] if every else [])
    return Findings(anchor, claims, notes)


# ---------------------------------------------------------------------------------------------------------------
# The scorecard: claim x model family
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Section:
    """One chapter section of the scorecard: its title, chapter notebook, experiments and findings function."""

    title: str
    stem: str
    experiments: tuple[str, ...]
    findings: Callable[[dict[str, list[dict]]], Findings]

    def anchor(self) -> str:
        return self.findings({n: [] for n in self.experiments}).anchor


#: The scorecard's sections, in the book's order.
SECTIONS: tuple[Section, ...] = (
    Section("Numerosity (Sec. 4.1.1)", "01_numerosity", ("numerosity",),
            lambda recs: numerosity_findings(recs["numerosity"])),
    Section("Colour, size and location (Sec. 4.1.2–4.1.3)", "02_color_size_location",
            tuple(CHAPTERS["02_color_size_location"] or ()), pie_findings),
    Section("Convolution and prototype enhancement (Sec. 4.2)", "03_convolution_prototype",
            tuple(CHAPTERS["03_convolution_prototype"] or ()), convolution_findings),
    Section("Independence of features (Sec. 4.3)", "04_independence", tuple(INDEPENDENCE_EXPERIMENTS),
            independence_findings),
    Section("Combinations: pie and three-MNIST (Sec. 5)", "05_combinations",
            tuple(CHAPTERS["05_combinations"] or ()), combination_findings),
    Section("CLEVR: numerosity and shape–colour pairs (Sec. 4.1.1, 5)", "06_clevr", tuple(CLEVR_EXPERIMENTS),
            clevr_findings),
)


@dataclass
class ScoredSection:
    """A section's findings per model family at one preset (``runs``: runs per family)."""

    section: Section
    preset: str
    families: dict[str, Findings]
    runs: dict[str, int]
    claims: list[Claim]          # the section's claims (as with no runs), for the rows of the matrix
    pending: list[str] = field(default_factory=list)  # families whose runs at the preset are not all stored yet
    seeds: list[int] | None = None  # the first seeds its page shows while the others are still to run; None: all

    @property
    def so_far(self) -> str:
        """", seed 0 so far" (or ", seeds 0, 1 so far") where the page shows only its first seeds; else ""."""
        if not self.seeds:
            return ""
        return f", seed{'s' if len(self.seeds) > 1 else ''} {', '.join(map(str, self.seeds))} so far"

    @property
    def href(self) -> str:
        return f"{self.section.stem}.html#{self.section.anchor()}"

    def verdict(self, family: str, key: str) -> Verdict:
        if family in self.pending:
            return Verdict(NOT_TESTABLE, reasons=(PENDING_REASON.format(self.preset),))
        if family not in self.families:
            return Verdict(NOT_TESTABLE, reasons=(NOT_RUN_REASON.format(self.preset),))
        return self.families[family].verdict(key)


class Details:
    """The scorecard's per-section details: each family's findings, as HTML (``str()``: Markdown)."""

    def __init__(self, sections: list[ScoredSection]) -> None:
        self.sections = sections

    def _parts(self, html_: bool) -> list[str]:
        out = []
        for s in self.sections:
            link = f"<a href=\"{s.href}\">chapter</a>" if html_ else f"[chapter]({s.href})"
            out.append(f"<h2>{html.escape(s.section.title)} ({link})</h2>" if html_ else
                       f"## {s.section.title} ({link})")
            if not s.families:
                out.append(f"<p>Not run at the <code>{s.preset}</code> preset yet.</p>" if html_ else
                           f"Not run at the `{s.preset}` preset yet.")
            for fam, f in s.families.items():
                head = f"{LABELS.get(fam, fam)} ({s.runs[fam]} runs at the `{s.preset}` preset{s.so_far})"
                out.append(f"<h3>{inline_html(head)}</h3>" if html_ else f"### {head}")
                if f.claims and all(c.verdict.verdict == NOT_TESTABLE for c in f.claims):
                    out.append(self._untestable(f, fam, html_))  # one line, not a table of identical rows
                else:
                    out.append(f._repr_html_().replace(f"id=\"{f.anchor}\"", f"id=\"{f.anchor}-{fam}\"") if html_
                               else f.markdown)
        return out

    @staticmethod
    def _untestable(f: "Findings", fam: str, html_: bool) -> str:
        """A family none of whose claims could be scored: its notes and the reasons every claim shares, once; a
        reason of one claim only (what another reading would say) follows, named by its claim."""
        shared = [r for r in dict.fromkeys(r for c in f.claims for r in c.verdict.reasons)
                  if all(r in c.verdict.reasons for c in f.claims)] or ["no run passed its gate"]
        own = [f"{c.paper.rstrip('.')}: {'; '.join(r for r in c.verdict.reasons if r not in shared)}"
               for c in f.claims if any(r not in shared for r in c.verdict.reasons)]
        line = (f"**None of its {len(f.claims)} claims can be scored: not testable at this scale** "
                f"({'; '.join(shared)}).")
        if own:
            line += f" By claim: {'; '.join(own)}."
        if not html_:
            return "\n\n".join([*f.notes, line])
        notes = "".join(f"<p>{inline_html(n.removeprefix('> '))}</p>\n" for n in [*f.notes, line])
        return f"<div class=\"findings verdict-not-testable-all\" id=\"{f.anchor}-{fam}\">\n{notes}</div>"

    def __str__(self) -> str:
        return "\n\n".join(self._parts(False))

    def _repr_html_(self) -> str:
        return "\n".join(self._parts(True))


class Scorecard:
    """Every claim we check, per model family: a matrix of verdicts (``_repr_html_``, ``matrix()``), counts per
    family and per claim (``counts()``) and the findings behind each cell (``details()``)."""

    def __init__(self, sections: list[ScoredSection]) -> None:
        self.sections = sections
        self.families = _families({"model": f} for s in sections for f in [*s.families, *s.pending])

    def cells(self) -> list[tuple[ScoredSection, Claim, dict[str, Verdict]]]:
        """(section, claim, verdict per family) for every claim, in the book's order."""
        return [(s, c, {f: s.verdict(f, c.key) for f in self.families}) for s in self.sections for c in s.claims]

    def matrix(self) -> Table:
        """Claim × model family; each cell a verdict with its counts, linked to the chapter section deciding it;
        the last column counts the verdicts across families."""
        rows = []
        for s, c, verdicts in self.cells():
            where = f"{s.section.title}, `{s.preset}` preset{s.so_far}"
            row: list[Any] = [Cell(f"{c.paper} ({where})", f"{inline_html(c.paper)}<br><span "
                                   f"class=\"scorecard-section\">{inline_html(where)}</span>")]
            row += [verdicts[f].cell(s.href) for f in self.families]
            row.append(_count_text([v.status for v in verdicts.values()]))
            rows.append(row)
        return Table(["the paper says", *(family_header(f) for f in self.families), "across families"], rows,
                     css="probe-table scorecard")

    def counts(self) -> Table:
        """Per model family (and over all): how many claims agree, partly agree, disagree, are not testable."""
        cells = self.cells()
        per = {f: [v[f].status for _, _, v in cells] for f in self.families}
        per["all families"] = [x for v in per.values() for x in v]
        rows = [[f if f == "all families" else family_header(f),
                 *(Cell(str(vs.count(k)), str(vs.count(k)), f"verdict-{k.replace(' ', '-')}") for k in STATUSES)]
                for f, vs in per.items()]
        return Table(["family", *STATUSES], rows, css="probe-table scorecard-counts")

    def details(self) -> Details:
        return Details(self.sections)

    @property
    def markdown(self) -> str:
        return self.matrix().markdown + "\n" + self.counts().markdown

    def __str__(self) -> str:
        return self.markdown

    def _repr_html_(self) -> str:
        if not self.families:
            return "<p>No records at this preset yet.</p>"
        return self.matrix()._repr_html_() + "\n" + self.counts()._repr_html_()


def family_header(family: str) -> str:
    """A family's label as a scorecard column: families the paper did not report on (diffusion, your own) say so."""
    label = LABELS.get(family, family)
    return f"{label} (beyond the paper)" if beyond_paper(family) else label


def _count_text(verdicts: Sequence[str]) -> str:
    return ", ".join(f"{verdicts.count(k)} {k}" for k in STATUSES if verdicts.count(k))


def score_section(section: Section, records: dict[str, list[dict]], preset: str,
                  pending: list[str] | None = None, seeds: list[int] | None = None) -> ScoredSection:
    """A section's findings per family from its records (one preset); ``pending``: families whose runs at the
    preset are not all stored yet (not scored); ``seeds``: the first seeds shown, where not all are stored."""
    fams = _families(r for rs in records.values() for r in rs)
    per = {f: section.findings({n: [r for r in rs if r["model"] == f] for n, rs in records.items()}) for f in fams}
    runs = {f: sum(r["model"] == f for rs in records.values() for r in rs) for f in fams}
    claims = {c.key: c for c in section.findings({n: [] for n in section.experiments}).claims}
    for f in per.values():  # a claim only some records raise (none today) still gets its row
        claims.update({c.key: c for c in f.claims if c.key not in claims})
    return ScoredSection(section, preset, per, runs, list(claims.values()), list(pending or []), seeds)


def scorecard(preset: str = "auto", store: Any = None) -> Scorecard:
    """Every claim we check, per section and model family, from the stored records at ``preset`` (all of them), or
    with ``auto`` from the records each section's chapter page shows (its preset, families and seeds, as the book
    builds it: :func:`probe_utils.build.chapter_records`)."""
    from probe_utils.build import chapter_records
    from probe_utils.params import check_choice
    from probe_utils.store import Store

    check_choice("preset", preset, ["auto", *PRESETS])
    store = store or Store()
    out = []
    for section in SECTIONS:
        if preset == "auto":
            at, recs, pending, seeds = chapter_records(section.stem, list(section.experiments), store)
        else:
            at, pending, seeds = preset, [], None
            recs = {n: list(store.records(n, at)) for n in section.experiments}
        out.append(score_section(section, recs, at, pending, seeds))
    return Scorecard(out)


# ---------------------------------------------------------------------------------------------------------------
# The measurements' own accuracy (data-sets page)
# ---------------------------------------------------------------------------------------------------------------

def measurement_accuracy(n: int = 500, seed: int = 12345) -> Table:
    """Every measurement's accuracy on ``n`` fresh renders per check (computed now, not typed in), next to the
    requirement it must meet."""
    from probe_utils.features import clevr as clevrf, dots as dotf, mnist3 as mnistf, pie as pief

    rows = []
    d = dotf.accuracy_report(n=max(n // 4, 25), seed=seed)
    rows.append(("dots", "count, exact (worst of counts 1–12)", f"{d['exact_worst']:.2%}", "≥ 99.5%",
                 d["exact_worst"] >= 0.995))
    p = pief.accuracy_report(n=n, seed=seed)
    for feat in ("size", "x", "y", "red"):
        err, sp = p[f"{feat}_p99_abs_err"], p[f"{feat}_spacing"]
        rows.append(("pie", f"{feat}, 99th percentile abs. error", f"{err:.4f}",
                     f"≤ ¼ of the grid spacing ({sp:g})", err <= sp / 4))
    m = mnistf.accuracy_report(n=n, seed=seed)
    rows.append(("three-MNIST", "digit, held-out real digits", f"{m['heldout_digit_accuracy_now']:.2%}", "≥ 98%",
                 m["heldout_digit_accuracy_now"] >= 0.98))
    rows.append(("three-MNIST", "triple, fresh renders", f"{m['triple_accuracy']:.2%}", "≥ 95%",
                 m["triple_accuracy"] >= 0.95))
    c = clevrf.accuracy_report(n=max(n // 2, 50), seed=seed)
    for key, label in (("count_accuracy", "count (1–10)"), ("pair_shape_accuracy", "two objects: shape pair"),
                       ("pair_color_accuracy", "two objects: colour pair")):
        if key in c:
            rows.append(("CLEVR", label, f"{c[key]:.2%}", "≥ 95%", c[key] >= 0.95))
    return Table(["data set", "measurement", "on fresh renders", "requirement", "met"],
                 [[a, b, v, r, "yes" if ok else "**no**"] for a, b, v, r, ok in rows])


# ---------------------------------------------------------------------------------------------------------------
# Measurements on generated-like images, and samples for checking them by eye
# ---------------------------------------------------------------------------------------------------------------

#: conditions a measurement must hold under (issue targets): dots exact on >= 95% with <= 1 px blur or >= 35% ink,
#: pie red mean error <= 0.05 under 1 px blur; images of no data set always refused
HOLD_CONDITIONS = ("clean", "blur_0.5", "blur_1", "faint_0.6", "faint_0.35", "blur_1_faint_0.5")
COUNT_TARGET = 0.95
RED_TARGET = 0.05


def robustness_table(size: int = 32, n: int = 40, seed: int = 12345) -> Table:
    """Each measurement's accuracy on generated-like versions of fresh renders at ``size`` px (computed now), next
    to the share it refuses and its target: blur, faint ink, noise, averaged colours, objects cut by the border,
    and images of no data set (grey mush, noise), which must be refused."""
    from probe_utils.features import clevr as clevrf, dots as dotf, mnist3 as mnistf, pie as pief

    def target(cond: str, value: float, need: float, higher: bool = True) -> str:
        if cond in ("grey_mush", "noise_images"):
            return "yes" if value == 1.0 else "**no**"
        if cond not in HOLD_CONDITIONS:
            return "–"
        return "yes" if (value >= need if higher else value <= need) else "**no**"

    rows = []
    for r in dotf.robustness_report(n=n, size=size, seed=seed):
        nodata = r["condition"] in ("grey_mush", "noise_images")
        rows.append(["dots", "count", r["description"], r["images"], "–" if nodata else f"{r['exact']:.1%} exact",
                     f"{r['refused']:.1%}", target(r["condition"], r["refused"] if nodata else r["exact"],
                                                   COUNT_TARGET)])
    for r in pief.robustness_report(n=max(5 * n, 100), size=size, seed=seed):
        nodata = r["condition"] in ("grey_mush", "noise_images")
        acc = "–" if nodata else (f"red ±{r['red_mean_abs_err']:.3f}, size ±{r['size_mean_abs_err']:.3f} "
                                  f"(bias {r['size_bias']:+.4f}; by ink mass ±{r['size_ink_mean_abs_err']:.3f}, "
                                  f"bias {r['size_ink_bias']:+.4f}), x ±{r['x_mean_abs_err']:.3f} (mean abs. error)")
        rows.append(["pie", "red, size, location", r["description"], r["images"], acc, f"{r['refused']:.1%}",
                     target(r["condition"], r["refused"] if nodata else r["red_mean_abs_err"], RED_TARGET,
                            higher=nodata)])
    for name, mod in (("three-MNIST", mnistf), ("CLEVR", clevrf)):
        report = getattr(mod, "robustness_report", None)
        if report is None:
            continue
        for r in report():
            acc = r.get("accuracy_accepted", r.get("exact"))
            rows.append([name, r.get("measurement", "reading"), r.get("description", r.get("condition")),
                         r.get("images", "–"), "–" if acc is None else f"{acc:.1%} of accepted right",
                         f"{r.get('refused', float('nan')):.1%}", "–"])
    return Table(["data set", "measurement", "images", "n", "accuracy", "refused", "target met"], rows)


def instrument_records(preset: str = "auto", per_family: int = 3, store=None) -> dict[str, list[dict]]:
    """Per experiment of the chapters, up to ``per_family`` stored runs of each model family (spread over the
    trained values), at ``preset`` (``auto``: the largest-scale preset with records for that experiment)."""
    from probe_utils.build import CHAPTERS
    from probe_utils.experiments import PRESETS, best_preset
    from probe_utils.params import check_choice, check_int
    from probe_utils.store import Store

    check_choice("preset", preset, ["auto", *PRESETS])
    per_family = check_int("records_per_family", per_family, 1, 100)
    store = store or Store()
    names = list(dict.fromkeys(e for exps in CHAPTERS.values() if exps for e in exps))
    out: dict[str, list[dict]] = {}
    for name in names:
        pre = best_preset([name], store) if preset == "auto" else preset
        recs = sorted(store.records(name, pre), key=lambda r: (_family_index(r["model"]), str(r["value"]), r["seed"]))
        chosen = []
        for fam in _families(recs):
            mine = [r for r in recs if r["model"] == fam]
            step = max(1, len(mine) // per_family)
            chosen += mine[::step][:per_family]
        if chosen:
            out[name] = chosen
    return out


def instrument_summary(checks: dict[str, list[dict]]) -> Table:
    """Per experiment and family shown on the instrument page: runs, and the share of samples refused."""
    rows = []
    for name, recs in checks.items():
        for fam in _families(recs):
            mine = [r for r in recs if r["model"] == fam]
            refused = [float(r["result"].get("invalid_share", 0.0)) for r in mine]
            rows.append([name, LABELS.get(fam, fam), ", ".join(sorted({r["preset"] for r in mine})), len(mine),
                         f"{np.mean(refused):.1%}", f"{max(refused):.1%}"])
    if not rows:
        return Table(["note"], [["No stored runs yet: run a chapter (or the book command) first."]])
    return Table(["experiment", "family", "preset", "runs shown", "refused (mean)", "refused (worst run)"], rows)


# ---------------------------------------------------------------------------------------------------------------
# The CPU recipe search (book/recipe_search)
# ---------------------------------------------------------------------------------------------------------------

def recipe_search_results(folder=None) -> list[dict]:
    """The finished entries of the recipe search (``book/recipe_search/<name>.json``), in plan order."""
    import json
    from pathlib import Path

    from probe_utils.store import default_root

    folder = Path(folder) if folder is not None else default_root().parent / "recipe_search"
    plan_file = folder / "plan.json"
    if not plan_file.exists():
        return []
    out = []
    for entry in json.loads(plan_file.read_text()):
        path = folder / f"{entry['name']}.json"
        if path.exists():
            out.append(json.loads(path.read_text()))
    return out


def _knobs_text(knobs: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in knobs.items()) or "family defaults"


def recipe_search_table(results: Sequence[dict], target: float = 0.9) -> Table:
    """One row per finished entry: family, trained count, seed, recipe knobs, iterations in its budget, and the
    final 2,000 samples' exactly-k share (merged blobs once / by area), blank and refused shares, mean count."""
    rows = []
    for r in results:
        f = r["final"]
        ok = f["exact"] >= target
        rows.append([r["name"], LABELS.get(r["model"], r["model"]), r["count"], r["seed"], _knobs_text(r["knobs"]),
                     f"{r['minutes']:g} min, {r['steps']:,} it ({r['iterations_per_s']:.1f}/s)",
                     Cell(f"{f['exact']:.1%}", f"<strong>{f['exact']:.1%}</strong>" if ok else f"{f['exact']:.1%}"),
                     f"{f['exact_split']:.1%}", f"{f['blank']:.1%}", f"{f['refused']:.1%}",
                     "–" if f["mean"] is None else f"{f['mean']:.2f}"])
    return Table(["entry", "family", "trained on", "seed", "recipe", "budget", "exactly k", "… merged by area",
                  "blank", "refused", "mean count"], rows)


#: A check of a training recipe on one run: (the run, the one-dot target) -> (what the run shows, whether it meets
#: the check).
RecipeCheck = Callable[[dict, float], tuple[str, bool]]


def _exact_one(rec: dict, target: float) -> tuple[str, bool]:
    share = measurable(rec) * float(_dist(rec)[1] / _dist(rec).sum()) if _dist(rec).sum() > 0 else 0.0
    return on_its_side(share, lambda x: x >= target), share >= target


def _mode_three(rec: dict, target: float) -> tuple[str, bool]:
    if _dist(rec).sum() <= 0:
        return "nothing counted", False
    mode = _count_mode(rec)
    return f"mode {mode} ({_dist(rec).max() / _dist(rec).sum():.0%})", mode == 3


def _red_centred(rec: dict, target: float) -> tuple[str, bool]:
    if _dist(rec).sum() <= 0:
        return "nothing measured", False
    shape = A.response_shape(_dist(rec), _centres(rec))
    width = float(np.diff(EXPERIMENTS["pie_red"].edges).min())
    ok = abs(shape["mean"] - float(rec["value"])) <= RED_CENTRE_TOL and shape["sd"] >= MIN_SD_BINS * width
    mean = on_its_side(shape["mean"], lambda m: abs(m - float(rec["value"])) <= RED_CENTRE_TOL, 3, percent=False)
    return f"mean {mean}, sd {shape['sd']:.3f}", ok


def _on_training(rec: dict, target: float) -> tuple[str, bool]:
    share = train_mass(rec)
    return f"{on_its_side(share, lambda x: x > 0.5)} ({measurable(rec):.0%} measurable)", share > 0.5


#: What "a model that learns its training data" asks of a training recipe, checked on the chapters' own runs:
#: (experiment, trained value, the check in words (``{target}``: the one-dot target), the check).
RECIPE_CHECKS: tuple[tuple[str, int | float, str, RecipeCheck], ...] = (
    ("numerosity", 1, "trained on 1 dot: at least {target} of all samples exactly one dot", _exact_one),
    ("numerosity", 3, "trained on 3 dots: 3 is the most frequent count", _mode_three),
    ("pie_red", 0.3, f"pie red at 0.3: mean within {RED_CENTRE_TOL} of it, and a spread (sd of at least "
                     f"{MIN_SD_BINS:g} bins)", _red_centred),
    ("pie_combos", 10, "10 pie combinations: most measurable samples on training combinations", _on_training),
)


def recipe_checks(preset: str = "cpu", store: Any = None, seeds: Sequence[int] = (0, 1, 2),
                  target: float = 0.9) -> Table:
    """Whether the preset's recipe makes models learn their training data, read from the chapters' stored runs at
    ``preset`` (the preset's own network width and training-set size): per check of :data:`RECIPE_CHECKS` and model
    family with runs, what each seed shows and how many seeds meet it (``target``: the share of one-dot samples the
    first check asks for). A seed not stored yet reads "not stored"."""
    from probe_utils.params import check_choice, check_float
    from probe_utils.store import Store

    check_choice("preset", preset, list(PRESETS))
    target = check_float("target", target, 0.0, 1.0)
    store = store or Store()
    pre = PRESETS[preset]
    rows = []
    for experiment, value, text, check in RECIPE_CHECKS:
        recs = [r for r in store.records(experiment, preset) if abs(float(r["value"]) - value) < 1e-9
                and all((r.get("params") or {}).get(k, getattr(pre, k)) == getattr(pre, k)
                        for k in ("width", "pool_size"))]
        for model in sorted({r["model"] for r in recs}, key=_family_index):
            by_seed = {int(r["seed"]): check(r, target) for r in recs if r["model"] == model}
            cells = [by_seed[s][0] if s in by_seed else "not stored" for s in seeds]
            met = sum(by_seed[s][1] for s in seeds if s in by_seed)
            stored = sum(s in by_seed for s in seeds)
            word = "no" if met < stored else "yes" if stored == len(seeds) else "so far"
            rows.append([text.format(target=f"{target:.0%}"), LABELS.get(model, model), *cells,
                         f"{word} (met by {met} of {stored} stored seed{'s' if stored != 1 else ''})"])
    return Table(["check", "family", *[f"seed {s}" for s in seeds], "met"], rows)


def recipe_search_skipped(folder=None) -> Table:
    """The plan's entries that were not run, each with the reason stated in the plan."""
    import json
    from pathlib import Path

    from probe_utils.store import default_root

    folder = Path(folder) if folder is not None else default_root().parent / "recipe_search"
    plan_file = folder / "plan.json"
    plan = json.loads(plan_file.read_text()) if plan_file.exists() else []
    rows = [[e["name"], LABELS.get(e["model"], e["model"]), _knobs_text(e.get("knobs", {})), e["skip"]]
            for e in plan if e.get("skip") and not (folder / f"{e['name']}.json").exists()]
    return Table(["entry", "family", "recipe", "why it was not run"], rows)


def _share_by(probes: Sequence[dict], seconds: float) -> float | None:
    """The exactly-k share of the last probe taken within ``seconds`` of training (CPU seconds)."""
    before = [p for p in probes if p["wall_s"] <= seconds]
    return before[-1]["exact"] if before else None


def recipe_search_summary(results: Sequence[dict], target: float = 0.9, budget_minutes: float | None = None
                          ) -> Markdown:
    """What the search found, in words computed from its results: per family the best entry and whether any
    reached ``target``; whether the share still rose in the second half of each entry's budget; and, for entries
    longer than ``budget_minutes`` (default: the ``cpu`` preset's), the share at that budget against the share at
    the end."""
    if not results:
        return Markdown("No entry of the search has finished yet.")
    budget = float(budget_minutes if budget_minutes is not None else (PRESETS["cpu"].max_minutes or 15))
    lines = []
    for model in sorted({r["model"] for r in results}, key=lambda m: list(LABELS).index(m) if m in LABELS else 99):
        rs = [r for r in results if r["model"] == model]
        best = max(rs, key=lambda r: r["final"]["exact"])
        shares = [r["final"]["exact"] for r in rs]
        reached = [r["name"] for r in rs if r["final"]["exact"] >= target]
        one = len(rs) == 1
        verdict = ((f"it reached the target ({target:.0%})" if one else
                    f"reached the target ({target:.0%}) in {len(reached)} of {len(rs)} entries") if reached else
                   f"**{'it did not reach' if one else 'no entry reached'} the target of {target:.0%}**")
        found = (f"1 entry, `{best['name']}`, final exactly-k share {best['final']['exact']:.1%} (blank "
                 f"{best['final']['blank']:.1%})" if one else
                 f"{len(rs)} entries, final exactly-k shares {min(shares):.1%}–{max(shares):.1%}; best "
                 f"`{best['name']}` ({best['final']['exact']:.1%}, blank {best['final']['blank']:.1%})")
        lines.append(f"- **{LABELS.get(model, model)}**: {found}; {verdict}.")
        rising = []
        for r in rs:
            ex = [p["exact"] for p in r["probes"]]
            if len(ex) >= 6:
                third = len(ex) // 3
                rising.append(float(np.mean(ex[-third:]) - np.mean(ex[third:2 * third])))
        if one and rising:
            lines.append(f"  Between the middle and the last third of its budget the share moved by {rising[0]:+.1%}.")
        elif rising:
            lines.append(f"  Between the middle and the last third of each entry's budget the share moved by "
                         f"{min(rising):+.1%} to {max(rising):+.1%} (median {float(np.median(rising)):+.1%}).")
        for r in rs:
            if r["minutes"] > budget:
                at_budget = _share_by(r["probes"], 60 * budget)
                end = r["probes"][-1]["exact"] if r["probes"] else None
                if at_budget is not None and end is not None:
                    lines.append(f"  Long run `{r['name']}` ({r['minutes']:g} min, {r['steps']:,} iterations): "
                                 f"{at_budget:.1%} exactly {r['count']} at the preset's {budget:g} min, "
                                 f"{end:.1%} at the end (last probe; final 2,000 samples: "
                                 f"{r['final']['exact']:.1%}).")
    return Markdown("\n".join(lines))
