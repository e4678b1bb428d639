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
# # Numerosity: how many dots does a model draw?
#
# **The claim (Sec. 4.1.1 of the paper, {cite:t}`zhao2018bias`).** Train a GAN or a VAE on images that all contain exactly *k* dots. The
# models do not learn to draw exactly *k* dots. The number of dots they generate is spread around *k*, with a slight
# bias towards more dots, and the spread grows with *k*. This looks like numerosity perception in people and monkeys
# {cite:p}`nieder2003coding,piazza2004tuning`.
#
# **How we probe it.** Each training set has one count *k* of non-overlapping coloured dots on white. We train each
# model family on it (the paper's two objectives, WGAN-GP and VAE, each with convolutional and with fully connected
# networks; a PixelCNN, which the paper's poster names; and, beyond the paper, a small diffusion model, marked as such
# in the scorecard), draw thousands of samples, and count the dots in every sample with the same counter we check on
# the training images. The distribution of generated counts for a trained count is the model's *impulse response* on
# numerosity (the paper's Fig. 3, left). The data set, the counter and its accuracy are described on the
# {ref}`methods page <methods-datasets>` and shown on the {doc}`data-sets page <00_datasets>`.

# %% tags=["parameters"]
preset = "cpu"  # ci | cpu | colab | paper: scale of the runs (see the methods page)
models = ["wgan_gp", "vae", "wgan_gp_fc", "vae_fc", "pixelcnn", "diffusion"]  # any of wgan_gp, vae, wgan_gp_fc, vae_fc, pixelcnn, diffusion, or a family `imports` registers
imports = []  # modules to import first (names or .py paths) that register families of your own: see 93_probe_your_model
counts = [1, 3, 5, 8]  # trained numbers of dots, 1..16
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
# ## The run
#
# One call trains and measures every (model, count, seed), or loads the stored record of a run with exactly these
# settings. Parameters are checked before anything runs; the preset sets the scale of the runs (see the
# {ref}`presets <methods-presets>`).

# %%
from probe_utils import experiments, findings, params, plots, widgets

params.check_chapter("01_numerosity", globals())  # every parameter, by its own name, before any work
records = experiments.run("numerosity", models=models, values=counts, seeds=seeds, preset=preset,
                          device=device, reuse=reuse)
findings.preset_banner(preset)

# %% [markdown]
# ## Training images and generated images
#
# Each row is one training count. On the left, training images; to the right, images each model generated after
# training on that count. The number on every image is what the dot counter measured on it
# ({numref}`fig-numerosity-samples`).

# %% mystnb={"figure": {"caption": "Training images (left; each has the trained number of dots) and the images each model family generated after training on that count, each labelled with the number of dots our counter measures. Cf. the paper's Fig. 2, top. A panel titled *fails its gate* shows a run that fails its training-health gate: shown, not scored.", "name": "fig-numerosity-samples"}}
plots.training_vs_generated(records, experiments.training_samples("numerosity", preset));

# %% [markdown]
# Move the slider to step through the trained counts: training images, generated images, and the distribution of
# generated counts for each family (this works in the static page, without a running kernel).

# %%
widgets.image_slider(plots.response_frames(records, experiments.training_samples("numerosity", preset)),
                     description="trained on")

# %% [markdown]
# ## The impulse response
#
# For each trained count (arrow), the share of generated images with each number of dots; the band is a 95%
# interval (over seeds when there are several, otherwise the sampling interval of each share)
# ({numref}`fig-numerosity-response`).

# %% mystnb={"figure": {"caption": "The numerosity impulse response: for each trained count (arrow), the share of generated images with each number of dots, per model family; bands are 95% intervals. Cf. the paper's Fig. 3, left (WGAN-GP), and Fig. 11 (VAE). Dotted: a response all of whose runs fail their training-health gate (shown, not scored); where only some seeds fail, the line is the mean of those that pass, as the verdicts score it.", "name": "fig-numerosity-response"}}
plots.impulse_response(records);

# %% [markdown]
# ## Mean and spread against the trained count
#
# {numref}`fig-numerosity-mean-spread` and the table below it.

# %% mystnb={"figure": {"caption": "Mean (left, with a 95% interval over seeds) and standard deviation (right) of the generated number of dots against the trained number: a summary of {numref}`fig-numerosity-response` (not a figure of the paper). Hollow: a setting all of whose runs fail their training-health gate (shown, not scored); where only some seeds fail, the point is the mean of those that pass.", "name": "fig-numerosity-mean-spread"}}
plots.mean_spread(records);

# %%
findings.summary_table(records)

# %% [markdown]
# ## Does the counting rule decide?
#
# Generated dots are not all clean: a model often draws a faint ghost of a dot beside the clear ones (the table shows which), and two dots may
# merge into one blob. The counter's rules count a faint blob as a dot and a merged blob once; the same samples are
# also read with faint blobs left out (fainter than all but ~0.1% of training dots) and with merged blobs counted by
# their area. Where the readings disagree, the rule, not the model, sets the number; the verdicts below are checked
# against every reading (see the {ref}`methods <methods-datasets>`).

# %%
findings.readings_table(records)

# %% [markdown]
# ## Did training converge?
#
# During training we counted the dots in samples at regular intervals. A run stops early once the distribution of
# counts stops changing (total-variation distance between consecutive probes below the preset's threshold, or below
# the probes' own sampling noise where that is larger, three times in a row, with healthy probes); otherwise it runs to
# the preset's iteration budget ({numref}`fig-numerosity-convergence`; see
# {ref}`training <methods-training>` on the methods page).

# %% mystnb={"figure": {"caption": "Training curves: the mean number of dots in samples drawn during training (left) and the total-variation distance between consecutive probes (right), one line per run (not a figure of the paper). Faded: a run that fails its training-health gate (shown, not scored).", "name": "fig-numerosity-convergence"}}
plots.convergence(records);

# %% [markdown]
# ## What we see, next to what the paper reports
#
# The paper reports (Fig. 3 left, Fig. 11 for the VAE) that the generated counts centre on the trained count with a
# slight over-estimate, e.g. trained on six dots, models generate four to nine. The table checks each of these claims
# against the runs above.

# %%
findings.numerosity_findings(records)

# %% [markdown]
# ## Provenance
#
# Every number above comes from these records in the results store (`book/results/numerosity/`).

# %%
findings.provenance_table(records)
