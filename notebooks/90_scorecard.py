# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Scorecard: the paper's claims against our runs
#
# Each table below is generated from the records in the results store at the chosen preset, one per model family,
# with the numbers behind each verdict: **agrees** (every setting we ran supports the claim), **partly** (some do),
# **disagrees** (none do). Nothing here is typed in; a claim whose experiment has not been run at this preset says
# so. Verdicts at the `ci` preset are smoke tests, not findings.

# %% tags=["parameters"]
preset = "auto"  # the preset whose stored records are scored; auto: per chapter, the largest-scale one with records

# %%
from probe_utils import book

book.preset_banner(preset)

# %%
book.scorecard(preset)
