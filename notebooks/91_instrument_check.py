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
# # Checking the instruments by eye
#
# Every number in this book is a measurement of generated images: a dot count, a red share, a radius, a digit
# triple, a CLEVR object count. The measurements are checked on fresh renders and on blurred, faint and noisy
# versions of them (see the data-sets page), but generated images can fail in ways no test set foresees. The paper's
# authors checked their counts by hand; this page lets a reader do the same. For every experiment and model family
# it shows the samples stored with each run, with the value the measurement read on each. Samples the measurement
# refused (grey mush, noise, smears, shapes no data set has) are marked **refused** in red: they are reported as
# unmeasurable in every chapter, never counted as 0.
#
# Read a panel as a question: would you have counted these images the same way?

# %% tags=["parameters"]
preset = "auto"  # which records: "auto" (per experiment, the largest-scale preset with records) or a preset name
records_per_family = 3  # runs shown per experiment and model family
repository = "https://github.com/probe-utils/probe-book"  # Colab installs probe_utils from this repository

# %% tags=["remove-cell"]
import subprocess, sys  # on Colab only: install probe_utils from `repository`, then choose the preset
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"probe_utils @ git+{repository}"], check=True)
from probe_utils.colab import setup; preset = setup(preset, repository)

# %%
from probe_utils import findings, params, plots

params.check_chapter("91_instrument_check", globals())  # every parameter, by its own name, before any work
checks = findings.instrument_records(preset, records_per_family)
findings.instrument_summary(checks)

# %% [markdown]
# ## Samples with their measured values
#
# One row of sixteen samples per run (the first sixteen of the samples the run was measured on).

# %%
for experiment, recs in checks.items():
    for fig in plots.instrument_check(recs, title=f"{experiment}"):
        display(fig)  # noqa: F821  (IPython's display)
        plots.plt.close(fig)
