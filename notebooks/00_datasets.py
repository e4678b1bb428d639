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
# # The probe data sets and their measurements
#
# Every experiment in the paper trains a model on images whose features we know exactly, then measures the same
# features on what the model generates. This page shows samples of each data set with their labels, and checks each
# measurement on fresh renders, whose true features are known, before we trust it on generated images. How each
# data set is drawn and each feature measured is on the {ref}`methods page <methods-datasets>`.
#
# | data set | features | paper |
# |---|---|---|
# | dots | number of dots | Sec. 4.1.1 |
# | pie | red proportion, size, x, y | Sec. 4.1.2–4.3, 5 |
# | three-MNIST | the triple of digits (1000 combinations) | Sec. 5 |
# | CLEVR-like scenes | number of objects; shapes and colours of two objects | Sec. 4.1.1, 5 |

# %% tags=["parameters"]
preset = "cpu"  # accepted for uniformity with the chapters; the ci preset checks fewer renders
n_check = None  # fresh renders per accuracy check (default: 100 at ci, 1000 otherwise)
seed = 12345  # seed of the fresh renders
repository = "https://github.com/probe-utils/probe-book"  # Colab installs probe_utils from this repository

# %% tags=["remove-cell"]
import subprocess, sys  # on Colab only: install probe_utils from `repository`, then choose the preset
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"probe_utils @ git+{repository}"], check=True)
from probe_utils.colab import setup; preset = setup(preset, repository)

# %%
import numpy as np

from probe_utils import findings, params, plots
from probe_utils.features import clevr as clevrf, dots as dotf, mnist3 as mnistf, pie as pief
from probe_utils.render import clevr, dots, mnist3, pie

params.check_chapter("00_datasets", globals())  # every parameter, by its own name, before any work
n_check = n_check or (100 if preset == "ci" else 1000)

# %% [markdown]
# ## Dots
#
# One image for each count from 1 to 16, at 64×64. The number on each image is what the dot counter measured; the
# renderer's label is the same count ({numref}`fig-data-dots`).

# %% mystnb={"figure": {"caption": "The dots data set: one render for each count from 1 to 16, each labelled with the count our dot counter measures (the true count in brackets where they differ). Cf. the paper's Fig. 2, top.", "name": "fig-data-dots"}}
x, lab = dots.render(count=np.arange(1, 17), n=16, seed=0)
measured = dotf.count(x)
plots.labelled_samples(x, [f"{m}" if m == c else f"{m} (true {c})" for m, c in zip(measured, lab["count"])],
                       "dots: measured count");

# %% [markdown]
# ## Pie
#
# One disc on white; the features are the red share, the radius, and the centre's offset from the image centre (in
# half-widths). Each image shows the measured red share and radius ({numref}`fig-data-pie`).

# %% mystnb={"figure": {"caption": "The pie data set: sixteen random pies, each labelled with its measured red share and radius. Cf. the paper's Fig. 4, left.", "name": "fig-data-pie"}}
x, lab = pie.render(n=16, seed=0)
m = pief.measure(x)
plots.labelled_samples(x, [f"red {r:.2f} r {s:.2f}" for r, s in zip(m["red"], m["size"])],
                       "pie: measured red share and radius", cols=4, scale=1.6);

# %% [markdown]
# ## Three-MNIST
#
# Three real MNIST digits side by side (the digits ship with the package). The label is the triple the classifier
# read from the image ({numref}`fig-data-mnist3`).

# %% mystnb={"figure": {"caption": "The three-MNIST data set, built from MNIST digits {cite:p}`lecun1998mnist`: sixteen random numbers, each labelled with the triple our digit classifier reads. Cf. the paper's Fig. 24.", "name": "fig-data-mnist3"}}
x, lab = mnist3.render(n=16, seed=0)
read = mnistf.classify(x)
plots.labelled_samples(x, [f"{t:03d}" for t in read["triple"]], "three-MNIST: triple read by the classifier");

# %% [markdown]
# ## CLEVR-like scenes
#
# Scenes from our batched ray-caster (sphere, cube, cylinder, cone, torus; CLEVR's eight colours; rubber and metal),
# with one to ten objects. The label is the number of objects the trained classifier counted
# ({numref}`fig-data-clevr`).

# %% mystnb={"figure": {"caption": "Our CLEVR-like scenes (after {cite:t}`johnson2017clevr`) with one to ten objects, each labelled with the number of objects our classifier counts. Cf. the paper's Fig. 2, bottom.", "name": "fig-data-clevr"}}
x, lab = clevr.render(n=16, seed=0, count=np.arange(1, 17) % 10 + 1)
plots.labelled_samples(x, [f"{c}" for c in clevrf.count(x)], "CLEVR: counted objects");

# %% [markdown]
# At the `cpu` preset the numerosity scenes are 32×32 pixels (pair scenes stay at 64: the shapes need them). The same
# scenes at 32 px, counted by the same reader ({numref}`fig-data-clevr-32`):

# %% mystnb={"figure": {"caption": "The scenes above rendered at 32\u00d732 pixels, the size the `cpu` preset trains CLEVR numerosity on, each labelled with the number of objects our classifier counts at that size.", "name": "fig-data-clevr-32"}}
x32, _ = clevr.render(n=16, seed=0, size=32, count=np.arange(1, 17) % 10 + 1)
plots.labelled_samples(x32, [f"{c}" for c in clevrf.count(x32)], "CLEVR at 32 px: counted objects");

# %% [markdown]
# ## How accurate is each measurement?
#
# Each row is computed now, on fresh renders drawn with the seed above, and compared with what the experiments need.

# %%
findings.measurement_accuracy(n=n_check, seed=seed)

# %% [markdown]
# ## Do the measurements hold on generated-like images?
#
# Generated samples are blurred, faint, noisy, their colours averaged, and sometimes no image of the data set at all.
# Each row below takes fresh renders at the training size of the `cpu` preset (32 px), degrades them in one way,
# and measures them again: how often the reading is still right, and how often the measurement refuses the image
# instead of guessing (a refused sample is reported as unmeasurable in every chapter, never as 0). Grey mush and noise
# hold no dots, pie or digits: the only right answer is to refuse them. The targets (ours): dot counts exact on at
# least 95% of images up to 1 px of blur and down to 35% ink; the pie's red share within 0.05 on average under 1 px
# of blur. Blur reads a pie's size smaller (the half-ink contour of a blurred disc lies inside its edge: see the
# signed bias); the radius read from the disc's ink mass, shown beside it and stored with every size run as a second
# reading of the size claim, stays put. The [instrument page](91_instrument_check.ipynb) shows the same measurements
# on stored generated samples.

# %%
findings.robustness_table(size=32, n=max(10, n_check // 25), seed=seed)
