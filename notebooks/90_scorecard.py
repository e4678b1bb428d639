# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Scorecard: the paper's claims against our runs
#
# One row per claim of the paper, one column per model family, generated from the records in the results store: for
# each chapter, the records its page shows (its preset, and the families and seeds whose runs are all stored; a family
# still running is named as such, and a row whose chapter shows only its first seeds says "seed 0 so far"). Each
# cell is a verdict with its counts (settings that support the claim / settings scored):
# **agrees** (every scored setting supports it), **partly** (some do), **disagrees** (none does), or **not testable
# at this scale** (no run passed its training-health gate, or every difference is within the noise). A cell where
# nothing was tried says so: **not run** (no runs of that family for the claim at the preset) or **not yet** (its runs
# are planned but not all stored). Each cell links to the chapter section that decides it; hover over a cell for its
# reasons: why it is not testable, or, for a partial verdict, which settings go against the claim and which were left
# undecided. Nothing here is typed in.
# Families the paper did not report on (diffusion models, or a family of your own) are marked "beyond the paper" in
# their column header: their verdicts test the paper's claims on models it never trained.
# Verdicts at the `ci` preset are smoke tests, not findings.

# %% tags=["parameters"]
preset = "auto"  # the preset whose stored records are scored; auto: per chapter, the records its page shows
repository = "https://github.com/probe-utils/probe-book"  # Colab installs probe_utils from this repository

# %% tags=["remove-cell"]
import subprocess, sys  # on Colab only: install probe_utils from `repository`, then choose the preset
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"probe_utils @ git+{repository}"], check=True)
from probe_utils.colab import setup; preset = setup(preset, repository)

# %%
from probe_utils import findings, params

params.check_chapter("90_scorecard", globals())  # every parameter, by its own name, before any work
findings.preset_banner(preset)

# %%
card = findings.scorecard(preset)
card

# %% [markdown]
# ## Training-health gates
#
# A run is scored only if it reproduces its own training data; a model that cannot even do that says nothing about
# how it generalizes. Each experiment's gate:

# %%
findings.gates_table()

# %% [markdown]
# ## Details per chapter and family
#
# The numbers behind every cell above: for each chapter section and model family, the runs that fail their gate
# (with the reason) and each claim with what our runs show.

# %%
card.details()
