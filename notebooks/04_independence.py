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
# # Independence: does one feature's response depend on the others?
#
# **The claim (Sec. 4.3 of the paper, {cite:t}`zhao2018bias`).** A model's response along one feature hardly changes when the other features
# of the training images are more or less varied, so each feature can be studied on its own. The only change the
# paper sees is a slightly larger variance when the other features are more random, and with it some close modes
# starting to merge.
#
# **How we probe it.** Three experiments on pies, one per studied feature: the red proportion (trained values 0.3,
# 0.4, 0.9), the radius (0.5, 0.55, 0.8) and the x position of the centre (−0.05, 0, 0.2; half-widths). In each
# training set the studied feature takes its three values equally often, and with each of them the other features
# (size, x, y, red, except the studied one) take only k random values: k = 1 ties them tightly to the studied feature,
# k = 50 almost frees them. If the feature is independent of the others, the generated distribution of the studied
# feature should be the same for every k. We compare each response with the one for the smallest k: total-variation
# distance, a chi-square test of homogeneity with Cramér's V as its effect size, and how the spread changes with k
# (see the {ref}`methods page <methods-experiments>`).

# %% tags=["parameters"]
preset = "cpu"  # ci | cpu | colab | paper
models = ["wgan_gp", "vae"]  # any of wgan_gp, vae, wgan_gp_fc, vae_fc, pixelcnn, diffusion, or a family `imports` registers
imports = []  # modules to import first (names or .py paths) that register families of your own: see 93_probe_your_model
nuisance_values = [1, 10, 50]  # how many random values the other features take, each in 1..50
seeds = 3  # a number of seeds (0..n-1) or a list of seeds
device = "auto"  # auto | cpu | cuda | mps
reuse = True  # load stored records that match these settings instead of training again
repository = "https://github.com/probe-utils/probe-book"  # Colab installs probe_utils from this repository

# %% tags=["remove-cell"]
import subprocess, sys  # on Colab only: install probe_utils from `repository`, then choose the preset
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"probe_utils @ git+{repository}"], check=True)
from probe_utils.colab import setup; preset = setup(preset, repository)

# %% [markdown]
# ## The runs
#
# One call per studied feature; stored records with exactly these settings are reused.

# %%
from probe_utils import build, experiments, findings, params, plots, widgets

params.check_chapter("04_independence", globals())  # every parameter, by its own name, before any work
common = dict(models=models, values=nuisance_values, seeds=seeds, preset=preset, device=device, reuse=reuse)
for name in build.INDEPENDENCE_EXPERIMENTS:
    experiments.check_parameters(name, **common)  # fail fast on any bad parameter
records = {name: experiments.run(name, **common) for name in build.INDEPENDENCE_EXPERIMENTS}
findings.preset_banner(preset)

# %% [markdown]
# ## Training images and generated images
#
# For the red experiment, each row a number of nuisance values: training pies and each model's samples, annotated
# with their measured proportion of red ({numref}`fig-independence-samples`).

# %% mystnb={"figure": {"caption": "Training pies of the red experiment, one row per number of nuisance values, and each model family's samples, labelled with their measured red proportion. A panel titled *fails its gate* shows a run that fails its training-health gate: shown, not scored.", "name": "fig-independence-samples"}}
plots.training_vs_generated(records["indep_red"], experiments.training_samples("indep_red", preset, seed=0));

# %% [markdown]
# ## The responses as the other features vary (the paper's Fig. 7)
#
# One line per number of nuisance values k (dark: few, light: many); arrows mark the three trained values. The
# slider shows one model family at a time, {numref}`fig-independence-responses` both.

# %%
widgets.image_slider(plots.independence_frames(records), description="model")

# %% mystnb={"figure": {"caption": "The response along each studied feature (columns) for each number of values the other features take (one line per number; dark: few, light: many), per model family (rows); arrows: the three trained values. Cf. the paper's Fig. 7 (WGAN-GP) and Fig. 14 (VAE). Dotted: a response all of whose runs fail their training-health gate (shown, not scored); where only some seeds fail, the line is the mean of those that pass, as the verdicts score it; the second line of a panel's title says how many seeds are behind its lines.", "name": "fig-independence-responses"}}
plots.independence(records);

# %% [markdown]
# ## How much the responses move

# %%
findings.independence_table(records)

# %% [markdown]
# With thousands of generated images per response the chi-square test flags even tiny differences, so read the
# distances and Cramér's V (0: identical histograms, 1: disjoint) next to its p-value. The TV distance and
# Cramér's V also count a mode that only widens in place; the column "largest mass moved between trained
# values" does not, and it is what the verdict on independence below reads. Likewise the overall sd, and its rank
# correlation with k, falls when mass leaves the far mode even as each mode widens; the claim on the variance reads
# the spread of each trained value's own mode (the column "sd per trained value").
#
# ## What we see, next to what the paper reports

# %%
findings.independence_findings(records)

# %% [markdown]
# ## Provenance

# %%
findings.provenance_table([r for recs in records.values() for r in recs])
