"""The README's line on the `cpu` runs states how many are stored, the core-hours they took and what is left to do;
those numbers must be what the committed records and the book's plan give (`sweep all --preset cpu --status`)."""

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
    assert stated == actual, (f"the README says {stated} (stored, core-hours, to do, core-hours to do); the records and "
                              f"the plan give {actual}: update the README's line")
