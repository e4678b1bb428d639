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
# # Two training modes: convolution, or a prototype?
#
# **The claim (Sec. 4.2 of the paper, {cite:t}`zhao2018bias`).** Train on pies whose red proportion is one of two values. When the two values
# are far apart (30% or 90%), the generated distribution is what a linear filter would give: the responses to each
# value alone, added with the training weights (a convolution of the training distribution with the unimodal
# response). When they are close (30% or 40%), the modes "snap" together: the model generates the mean (35%) more
# often than the convolution predicts, although no training image had it. Psychologists call this prototype
# enhancement {cite:p}`minda2011prototype`.
#
# **How we probe it.** We train on each single red value and on each two-mode mixture, measure the red proportion of
# every generated pie, predict the mixture's response by adding the single-value responses, and compare: the
# total-variation distance between actual and predicted, and a prototype index, the actual mass in a window around
# the midpoint (the middle half of the gap) divided by the predicted mass there. The pie data set and the red
# measurement are described on the {ref}`methods page <methods-datasets>`.

# %% tags=["parameters"]
preset = "cpu"  # ci | cpu | colab | paper
models = ["wgan_gp", "vae"]  # any of wgan_gp, vae, wgan_gp_fc, vae_fc, pixelcnn, diffusion, or a family `imports` registers
imports = []  # modules to import first (names or .py paths) that register families of your own: see 93_probe_your_model
mixtures = [[0.3, 0.4], [0.3, 0.9]]  # training distributions: equally likely red proportions, in [0, 1]
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
# The single-value runs are the same records as in the colour chapter when their settings match.

# %%
from probe_utils import analysis, experiments, findings, params, plots, widgets
from probe_utils.experiments import EXPERIMENTS

params.check_chapter("03_convolution_prototype", globals())  # every parameter, by its own name, before any work
common = dict(models=models, seeds=seeds, preset=preset, device=device, reuse=reuse)
plan = experiments.check_parameters("pie_red_mix", values=mixtures, **common)  # fail fast on any bad parameter
modes = sorted({m for v in plan.values for m in experiments.mixture_modes(v)})
unimodal = experiments.run("pie_red", values=modes, **common)
bimodal = experiments.run("pie_red_mix", values=plan.values, **common)
rows = analysis.convolution_rows(unimodal, bimodal, EXPERIMENTS["pie_red"].centres)
findings.preset_banner(preset)

# %% [markdown]
# ## Training images and generated images
#
# {numref}`fig-convolution-samples`.

# %% mystnb={"figure": {"caption": "Training pies whose red proportion is one of two values (left, one mixture per row) and each model family's samples, each labelled with its measured red share. A panel titled *fails its gate* shows a run that fails its training-health gate: shown, not scored.", "name": "fig-convolution-samples"}}
plots.training_vs_generated(bimodal, experiments.training_samples("pie_red_mix", preset),
                            siblings=unimodal + bimodal);

# %% [markdown]
# ## Predicted against actual (the paper's Fig. 6)
#
# Dashed: the convolution prediction; solid: what the model generated; arrows: the training modes; grey band: the
# midpoint window of the prototype index. The slider steps through the training mixtures;
# {numref}`fig-convolution-effect` shows them all.

# %%
widgets.image_slider([(v, plots.convolution_effect([r for r in rows if r["value"] == v],
                                                   EXPERIMENTS["pie_red"].centres, unimodal + bimodal))
                      for v in plan.values], description="trained on")

# %% mystnb={"figure": {"caption": "The convolution prediction (dashed) against the actual response (solid) for each two-mode training distribution (rows) and model family (columns); arrows: the training modes; grey band: the midpoint window of the prototype index. Cf. the paper's Fig. 6 (and Fig. 10, 13). Dotted, in a panel titled *fails its gate*: a response whose runs fail their training-health gate (shown, not scored).", "name": "fig-convolution-effect"}}
plots.convolution_effect(rows, EXPERIMENTS["pie_red"].centres, unimodal + bimodal);

# %%
findings.convolution_table(rows)

# %% [markdown]
# ## What we see, next to what the paper reports

# %%
findings.convolution_findings({"pie_red": unimodal, "pie_red_mix": bimodal})

# %% [markdown]
# ## Provenance

# %%
findings.provenance_table(unimodal + bimodal)
