"""The README's line on the `cpu` runs states how many are stored, the core-hours they took, what is left to do and
which chapters show only some of their runs; that must be what the committed records and the book's plan give
(`sweep all --preset cpu --status`)."""

from __future__ import annotations

import re
from pathlib import Path

from probe_utils.store import Store
from probe_utils.sweep import plan_runs

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_states_the_stored_runs_and_what_is_left():
    text = re.sub(r"\s+", " ", (REPO / "README.md").read_text())
    found = re.search(r"Stored at this commit: ([\d,]+) runs \(([\d.]+) core-hours of training\), (?:([\d,]+) to do "
                      r"\(about ([\d.]+) core-hours\)|none to do)", text)
    assert found, "the README should say 'Stored at this commit: N runs (X core-hours of training), M to do (about Y " \
                  "core-hours)' (or 'none to do')"
    plan = plan_runs(["all"], preset="cpu", store=Store(), device="cpu")
    stated = (int(found[1].replace(",", "")), found[2], int((found[3] or "0").replace(",", "")), found[4])
    actual = (len(plan.done), f"{plan.done_train_s / 3600:.1f}", len(plan.todo),
              f"{plan.est_s / 3600:.1f}" if plan.todo else None)
    assert stated == actual, (f"the README says {stated} (stored, core-hours, to do, core-hours to do); the records "
                              f"and the plan give {actual}: update the README's line")


def _and(items: list[str]) -> str:
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def test_the_readme_says_which_chapters_show_only_some_of_their_runs():
    """A chapter whose `cpu` page shows only its first seeds (or some families) is named in the README as "NN shows
    seeds 0 and 1" (or "NN shows …"); a chapter whose page shows every run is not. (A page at another preset is not
    the `cpu` line's business.)"""
    from probe_utils.build import RUN_PLAN
    from probe_utils.sweep import page_state

    text = re.sub(r"\s+", " ", (REPO / "README.md").read_text())
    store = Store()
    for stem in RUN_PLAN:
        state, number = page_state(stem, store), stem[:2]
        if state == "page: cpu":
            assert f"{number} shows" not in text, f"{stem}'s page shows every run ({state}); the README says otherwise"
            continue
        if not state.startswith("page: cpu,"):
            continue
        seeds = re.search(r"seeds ([\d,]+)", state)
        said = f"{number} shows seeds {_and(seeds[1].split(','))}" if seeds else f"{number} shows"
        assert said in text, f"{stem}'s page is at '{state}': the README should say '{said} …'"
