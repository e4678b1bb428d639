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
repository = ""  # the book's GitHub URL: Colab installs probe_utils from it (the book command fills it in)

# %% tags=["hide-input"]
# On Colab, and only there: install probe_utils from the book's repository; on a GPU, train at the colab preset.
import sys

if "google.colab" in sys.modules:
    import subprocess

    if not repository:
        raise ValueError("parameter 'repository' must be the book's GitHub URL, e.g. https://github.com/OWNER/NAME")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"probe_utils @ git+{repository}"], check=True)
    import torch

    if torch.cuda.is_available() and preset in ("ci", "cpu"):
        print(f"On a Colab GPU: preset {preset!r} -> 'colab' (set preset in the parameters cell to keep another)")
        preset = "colab"

# %%
from probe_utils import findings

findings.preset_banner(preset)

# %%
findings.scorecard(preset)
