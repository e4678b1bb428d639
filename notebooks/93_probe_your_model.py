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
# # Probe your own model
#
# The probes of this book measure images, not networks: any model that draws images can be trained on the same
# training sets and measured with the same instruments as the paper's four families. Register your model under a
# name, and every place that takes a model name takes yours: `experiments.run`, the chapters' `models` parameter, the
# command line and the sweep.
#
# **The interface** (`probe_utils.models.GenerativeModel`, a PyTorch `nn.Module`). The book's one training
# loop needs only this:
#
# - a constructor taking the keywords `image_size`, `width` and `z_dim` (passed on to `GenerativeModel.__init__`);
#   `width` is the preset's network width, so scale your layers with it;
# - `groups()`: a dict of parameter groups, each trained by its own Adam optimiser (class attributes `lr`, `betas`);
# - `plan()`: the groups updated, in order, within one training iteration (each a key of `groups()`);
# - `loss(batch, group)`: a scalar loss for that group on a batch of training images, floats (n, 3, H, W) in [0, 1];
# - `sample(n, generator)` returning (n, 3, H, W) images in [0, 1], or instead `decode(z)` (with latent codes from
#   `latent(n, generator)`, standard normal by default) and the base class's `sample`.
#
# `probe_utils.models.register(name, factory, label=...)` checks a class when it is registered and every model when it
# is built, and names what is missing. This page defines a tiny model, registers it and probes it on numerosity
# ([chapter 1](01_numerosity.ipynb)).
#
# **Read the numbers below as a smoke test.** The page runs at the `ci` preset (40 iterations, 32×32 images): it
# shows that the route works in seconds, not what the model learns. Run it at `cpu` or on a GPU for a measurement.

# %% tags=["parameters"]
preset = "ci"  # ci | cpu | colab | paper: scale of the run (ci: a smoke test of seconds)
counts = [1, 3]  # trained numbers of dots, 1..16
seeds = 1  # a number of seeds (0..n-1) or a list of seeds
device = "auto"  # auto | cpu | cuda | mps
reuse = False  # a stored record is found by family name and settings, not by code: keep False while you edit the model
repository = "https://github.com/probe-utils/probe-book"  # Colab installs probe_utils from this repository

# %% tags=["remove-cell"]
import subprocess, sys  # on Colab only: install probe_utils from `repository`, then choose the preset
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"probe_utils @ git+{repository}"], check=True)
from probe_utils.colab import setup; preset = setup(preset, repository)

# %% [markdown]
# ## A model of your own
#
# A small fully connected GAN with the original non-saturating loss {cite:p}`goodfellow2014gan`, which is
# none of the paper's families: a generator of one hidden layer, a discriminator of one hidden layer, one update of
# each per iteration. It draws its latent codes from the base class's standard normal `latent` and implements
# `decode`, so the base class's `sample` serves.

# %%
import torch.nn.functional as F
from torch import nn

from probe_utils import experiments, findings, models, params, plots

params.check_chapter("93_probe_your_model", globals())  # every parameter, by its own name, before any work


class TinyGAN(models.GenerativeModel):
    """Non-saturating GAN, fully connected: z -> 8*width units -> image; image -> 8*width units -> logit."""

    lr = 2e-4
    betas = (0.5, 0.999)

    def __init__(self, image_size: int = 64, width: int = 64, z_dim: int = 100) -> None:
        super().__init__(image_size, width, z_dim)
        hidden, pixels = 8 * width, 3 * image_size * image_size
        self.generator = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, pixels), nn.Sigmoid(),
                                       nn.Unflatten(1, (3, image_size, image_size)))
        self.discriminator = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.LeakyReLU(0.2),
                                           nn.Linear(hidden, 1))

    def groups(self):
        return {"discriminator": list(self.discriminator.parameters()),
                "generator": list(self.generator.parameters())}

    def plan(self):
        return ["discriminator", "generator"]

    def decode(self, z):
        return self.generator(z)

    def loss(self, batch, group):
        fake = self.decode(self.latent(batch.shape[0])).to(batch.dtype)
        if group == "discriminator":  # real images -> logit up, generated ones -> logit down
            return F.softplus(-self.discriminator(batch)).mean() + F.softplus(self.discriminator(fake.detach())).mean()
        return F.softplus(-self.discriminator(fake)).mean()  # the generator: make its images look real


# replace=True: running this cell again registers the edited class instead of refusing the name as taken
models.register("tiny_gan", TinyGAN, label="Tiny GAN (this page)", replace=True)
print(f"registered families: {', '.join(models.FAMILIES)}")

# %% [markdown]
# ## The run
#
# The same call the chapters make: the parameters are checked, the training set of each count is rendered, the
# model is trained by the book's training loop with its probes, and its samples are measured with the dot counter and
# stored. A training recipe names only the book's own families, so yours trains with its own settings (its `lr`,
# `betas` and constructor defaults).

# %%
records = experiments.run("numerosity", models=["tiny_gan"], values=counts, seeds=seeds, preset=preset,
                          device=device, reuse=reuse)
for r in records:
    res = r["result"]
    print(f"trained count {r['value']}, seed {r['seed']}: {r['provenance']['steps']} iterations, "
          f"{r['provenance']['train_wall_s']} s of training; the counter read {1 - res['invalid_share']:.0%} "
          f"of {res['n_samples']} samples")
findings.preset_banner(preset)

# %% [markdown]
# ## What it drew, and how many dots the counter reads
#
# Training images (left) and the model's samples for each trained count, each labelled with the number of dots the
# counter reads on it (`?`: refused, e.g. a blur that is not a set of dots); then the distribution of the counts it
# generated, the paper's impulse response (over the samples the counter could read). After 40 iterations at `ci`
# expect noise that the counter refuses, and so an empty response.

# %%
plots.training_vs_generated(records, experiments.training_samples("numerosity", preset));

# %%
plots.impulse_response(records);

# %% [markdown]
# The same summary table the numerosity chapter shows, for the registered family (a `ci` smoke test: it proves the
# route, not what the model learns):

# %%
findings.summary_table(records)

# %% [markdown]
# ## Your model in a module: chapters, command line and sweep
#
# Put the class and its `register(...)` call in a module, say `my_models.py`. Each route imports it first:
#
# ```bash
# # a chapter (papermill): the `imports` parameter lists the modules, `models` then takes their families
# papermill notebooks/01_numerosity.ipynb out.ipynb -p preset ci -p imports "['my_models']" -p models "['my_model', 'vae']"
# # the command line and the sweep: --import (a module name or a .py path)
# python -m probe_utils run numerosity --import my_models --models my_model --values 1,3 --preset ci
# python -m probe_utils sweep 01_numerosity --import my_models -p models "['my_model']" --preset cpu
# # any process: the environment variable, read when probe_utils.models is imported
# PROBE_UTILS_IMPORT=my_models,other_models python -m probe_utils sweep all --preset cpu
# ```
#
# Records are stored per family name; they record the settings of the run but not your code. After changing the
# model, train again (`reuse=False`, `--fresh`) or register it under a new name.
