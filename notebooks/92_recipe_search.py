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
# # Models that learn their training data: the CPU recipe search
#
# A model that does not reproduce its own training data tells us nothing about how it generalises: its runs are
# "not testable" in every chapter (see the gates on the [scorecard](90_scorecard.ipynb)). The paper trained for 200k
# iterations on GPUs; without a GPU we have 15 minutes of one CPU core per run (the `cpu` preset's budget). So before any chapter is run at
# the `cpu` preset we ask: **which training recipe makes a small conv model draw what it was trained on, within that
# budget?** The yardstick is the simplest training set of the paper: images with exactly one dot (32×32, network
# width 16). The target: at least 90% of samples with exactly one dot, for both conv families and every seed.
#
# Each entry of the search trains one model for a fixed number of minutes on one core with the project's training
# loop and measures its samples about every minute with the project's dot counter (merged blobs counted once; the
# second reading counts them by area). The knobs are those in which the paper's text and the authors' released code
# differ (see [the differences page](../book/differences.md)): learning rate, the VAE's reconstruction loss and KL
# warm-up, initialisation, where batch norm sits and which statistics it uses when sampling, critic steps and batch
# reuse, bfloat16 on the CPU. The plan and every result are in `book/recipe_search/`
# (`python scripts/recipe_search.py --status`). The two families beyond the paper's four, PixelCNN and a small
# diffusion model, took the same yardstick for 15 minutes each before any chapter run (PixelCNN with and without the
# causal context summaries of its `context` option, and with weight averaging).

# %% tags=["parameters"]
target = 0.9  # share of samples with exactly the trained number of dots that counts as "reproduces its data"
repository = "https://github.com/probe-utils/probe-book"  # Colab installs probe_utils from this repository
preset = "cpu"  # accepted for uniformity with the chapters (this page only reads stored results)

# %% tags=["remove-cell"]
import subprocess, sys  # on Colab only: install probe_utils from `repository`, then choose the preset
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"probe_utils @ git+{repository}"], check=True)
from probe_utils.colab import setup; preset = setup(preset, repository)

# %%
from probe_utils import findings, params, plots

params.check_chapter("92_recipe_search", globals())  # every parameter, by its own name, before any work
results = findings.recipe_search_results()
findings.recipe_search_table(results, target=target)

# %% [markdown]
# ## What the search found
#
# Computed from the entries above: the best entry per family, whether the share was still rising late in each
# entry's budget, and what the long runs (four times the `cpu` preset's budget, the recipe of the `cpu` preset)
# gained over the preset's budget.

# %%
findings.recipe_search_summary(results, target=target)

# %% [markdown]
# ## The chosen recipe on the chapters' own runs
#
# The search judged recipes on its own short runs; the chapters' `cpu` runs use the recipe it chose, with three
# seeds each. Here they are held to what "learns its training data" asks of a recipe: trained on one dot, at least
# the target share of all samples with exactly one dot (the search's yardstick); trained on three dots, 3 the most
# frequent count; pie red at 0.3, a mean within 0.05 of it and a spread; ten pie combinations, most measurable
# samples on training combinations. Each cell is one stored run of a chapter at the `cpu` preset (its own network
# width and training-set size). A run that misses a check is not thrown away: its chapter reads it through its
# training-health gate, which asks less (for counts: the trained count the most frequent), and scores it only if it
# passes.

# %%
findings.recipe_checks("cpu", target=target)

# %% [markdown]
# ## How the share of one-dot samples grows with training time

# %%
plots.recipe_curves(results, target=target);

# %% [markdown]
# ## What the samples look like
#
# The first 32 samples of each entry, as stored.

# %%
for r in results:
    plots.recipe_samples(r);

# %% [markdown]
# ## Entries planned but not run
#
# The search is a budget (core-hours on two cores), so entries whose answer the finished ones already gave were
# skipped; each keeps its reason in the plan.

# %%
findings.recipe_search_skipped()
