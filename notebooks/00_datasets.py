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
# # The probe data sets and their measurements
#
# Every experiment in the paper trains a model on images whose features we know exactly, then measures the same
# features on what the model generates. This page shows samples of each data set with their labels, and checks each
# measurement on fresh renders, whose true features are known, before we trust it on generated images.
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
# renderer's label is the same count.

# %%
x, lab = dots.render(count=np.arange(1, 17), n=16, seed=0)
measured = dotf.count(x)
plots.labelled_samples(x, [f"{m}" if m == c else f"{m} (true {c})" for m, c in zip(measured, lab["count"])],
                       "dots: measured count");

# %% [markdown]
# ## Pie
#
# One disc on white; the features are the red share, the radius, and the centre's offset from the image centre (in
# half-widths). Each image shows the measured red share and radius.

# %%
x, lab = pie.render(n=16, seed=0)
m = pief.measure(x)
plots.labelled_samples(x, [f"red {r:.2f} r {s:.2f}" for r, s in zip(m["red"], m["size"])],
                       "pie: measured red share and radius", cols=4, scale=1.6);

# %% [markdown]
# ## Three-MNIST
#
# Three real MNIST digits side by side (the digits ship with the package). The label is the triple the classifier
# read from the image.

# %%
x, lab = mnist3.render(n=16, seed=0)
read = mnistf.classify(x)
plots.labelled_samples(x, [f"{t:03d}" for t in read["triple"]], "three-MNIST: triple read by the classifier");

# %% [markdown]
# ## CLEVR-like scenes
#
# Scenes from our batched ray-caster (sphere, cube, cylinder, cone, torus; CLEVR's eight colours; rubber and metal),
# with one to ten objects. The label is the number of objects the trained classifier counted.

# %%
x, lab = clevr.render(n=16, seed=0, count=np.arange(1, 17) % 10 + 1)
plots.labelled_samples(x, [f"{c}" for c in clevrf.count(x)], "CLEVR: counted objects");

# %% [markdown]
# ## How accurate is each measurement?
#
# Each row is computed now, on fresh renders drawn with the seed above, and compared with what the experiments need.

# %%
findings.measurement_accuracy(n=n_check, seed=seed)
