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
# # Combinations: memorised or new?
#
# **The claim (Sec. 5 of the paper, {cite:t}`zhao2018bias`).** Train on images whose features come in only some of their possible
# combinations. With few combinations (10–20) the models reproduce exactly those; with more, they start generating
# combinations they never saw, and about 100 are enough for that. Recall stays very high throughout (no training
# combination is lost), while precision falls as the number of combinations grows. Neither a larger network (3M to
# 24M parameters, Fig. 25) nor half or twice the training data changes the curves.
#
# **How we probe it.** Two data sets. Pies whose size, x, y and red proportion lie on a 5 × 9 × 9 × 5 grid (2,025
# combinations) and three-digit MNIST numbers {cite:p}`lecun1998mnist` (1,000 combinations; both on the
# {doc}`data-sets page <00_datasets>`). For each number m of training combinations we
# draw m of them at random (a new draw per seed), train, measure every generated image (pies: each feature snapped to
# its nearest grid value; numbers: our digit classifier) and compare supports with the paper's rule: a combination is
# in the learned support if the model generates it at least 10% as often as the training distribution shows each of
# its combinations. Precision: the share of the learned support that was in the training set; recall: the share of
# the training set in the learned support (see the {ref}`methods page <methods-experiments>`). Then the same pie
# experiment with the network width and the number of training images scaled: the widths and sizes we ran are
# the ones the figure and tables of that section list, read from the records. Beyond the paper, a PixelCNN and a
# small diffusion model are trained on the pie combinations too (parameter `other_models`).

# %% tags=["parameters"]
preset = "cpu"  # ci | cpu | colab | paper
models = ["wgan_gp", "vae"]  # any of wgan_gp, vae, wgan_gp_fc, vae_fc, pixelcnn, diffusion, or a family `imports` registers
imports = []  # modules to import first (names or .py paths) that register families of your own: see 93_probe_your_model
pie_combinations = [10, 50, 200, 400]  # training combinations of the pie grid, each in 1..2025 (the paper: 10 to 400)
mnist_combinations = [10, 40, 160]  # training numbers of three-MNIST, each in 1..1000 (the paper: 10 to 160)
other_models = ["pixelcnn", "diffusion"]  # families beyond the paper's four, run on the pie combinations only
seeds = 3  # a number of seeds (0..n-1) or a list of seeds
invariance_model = "wgan_gp"  # the family of the network-size and data-size checks (the paper's Fig. 25: WGAN-GP)
invariance_combinations = [10, 200]  # pie combinations for those checks
width_factors = [0.5, 2]  # network widths, as multiples of the preset's width (the paper: 3M to 24M parameters)
data_factors = [0.5, 2]  # training images, as multiples of the preset's number (the paper: half and twice)
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

# %%
from probe_utils import experiments, findings, params, plots, widgets

params.check_chapter("05_combinations", globals())  # every parameter, by its own name, before any work
common = dict(seeds=seeds, preset=preset, device=device, reuse=reuse)
experiments.check_parameters("pie_combos", models=models, values=pie_combinations, **common)  # fail fast
experiments.check_parameters("mnist_combos", models=models, values=mnist_combinations, **common)
sizes = experiments.scaled_settings(preset, width_factors=width_factors, data_factors=data_factors)
for extra in sizes:
    experiments.check_parameters("pie_combos", models=invariance_model, values=invariance_combinations, **extra,
                                 **common)
records = {"pie_combos": experiments.run("pie_combos", models=models, values=pie_combinations, **common)
                         + (experiments.run("pie_combos", models=other_models, values=pie_combinations, **common)
                            if params.names_any(other_models) else []),
           "mnist_combos": experiments.run("mnist_combos", models=models, values=mnist_combinations, **common)}
# the invariance runs: the preset's own size first (the same records as above when the family is in `models`)
variants = [r for extra in sizes for r in experiments.run("pie_combos", models=invariance_model,
                                                           values=invariance_combinations, **extra, **common)]
rows = findings.combination_rows_by(records)
findings.preset_banner(preset)

# %% [markdown]
# ## Training images and generated images
#
# Each generated number is annotated *train* when it is one of the training combinations, *new* when it is not, and
# *?* when it could not be measured (for pies: a feature off the grid or no disc at all;
# {numref}`fig-combinations-samples`).

# %% mystnb={"figure": {"caption": "Three-MNIST training numbers (left) and each model family's samples, labelled *train* (a training combination), *new* (not one) or *?* (unreadable), one row per number of training combinations. Cf. the paper's Fig. 24. A panel titled *fails its gate* shows a run that fails its training-health gate: shown, not scored.", "name": "fig-combinations-samples"}}
plots.training_vs_generated(records["mnist_combos"], experiments.training_samples("mnist_combos", preset, seed=0),
                            labels="sample_status");

# %% [markdown]
# Two limits of the measurement to keep in mind. Our digit classifier learned from real digits; on blurred or
# malformed generated digits it still names a number, possibly a wrong one, which counts as a new combination (the
# paper read 500 generated samples by hand). And on the pie grid, neighbouring x and y values are 0.05 half-widths
# apart: 0.8 pixels at 32×32, 1.6 at the paper's 64×64, so a generated pie lands on a training cell only if the
# model places it to within half a pixel at the smaller size. So every verdict below is also judged counting a
# generated pie within one grid step of a training combination in x and y as that combination (with chance
# precision widened to match): a claim whose answer changes is decided by the grid's resolution, not by the runs,
# and reads not testable (the note above the verdicts says which).
#
# ## Precision and recall against the number of combinations (the paper's Fig. 8)
#
# Solid: precision, dashed: recall, bands: 95% intervals over seeds (with several seeds); dotted: the precision of a
# model that spreads its samples evenly over all combinations. A point is made of the runs that pass their
# training-health gate, as the verdicts score it (the table counts the failing runs it leaves out); a hollow point's
# runs all fail, so it is shown but not scored. The slider steps through the pie training sets;
# {numref}`fig-combinations-pr` shows both data sets.

# %%
widgets.image_slider(plots.combination_frames(records["pie_combos"], rows["pie"],
                                              experiments.training_samples("pie_combos", preset, seed=0)),
                     description="combinations")

# %% mystnb={"figure": {"caption": "Precision (solid) and recall (dashed) of the learned support against the number of training combinations, for pies and three-MNIST; bands: 95% intervals over seeds; dotted: the precision of a model uniform over all combinations; a point is the mean of the runs that pass their training-health gate; hollow: its runs all fail (shown, not scored). Cf. the paper's Fig. 8, middle and right.", "name": "fig-combinations-pr"}}
plots.precision_recall(rows, title="{}");

# %%
findings.combination_table(rows)

# %% [markdown]
# ## Network size and data-set size (the paper's Fig. 25)
#
# The pie experiment again for one family, with the network width and the number of training images scaled
# ({numref}`fig-combinations-size`).

# %% mystnb={"figure": {"caption": "The pie experiment of {numref}`fig-combinations-pr` with the network width (left) and the number of training images (right) scaled, for the settings our records hold. Cf. the paper's Fig. 25. Hollow: a setting whose runs all fail their training-health gate (shown, not scored); elsewhere a point is the mean of the passing runs.", "name": "fig-combinations-size"}}
by_width = findings.combination_rows_by({"pie_combos": variants}, by="width", default_only=False)
by_data = findings.combination_rows_by({"pie_combos": variants}, by="pool_size", default_only=False)
plots.precision_recall({"network width": by_width["pie"], "training images": by_data["pie"]},
                       title="pie: {}");

# %%
findings.combination_table(by_width, group="width")

# %%
findings.combination_table(by_data, group="pool_size")

# %% [markdown]
# ## What we see, next to what the paper reports

# %%
findings.combination_findings({"pie_combos": records["pie_combos"] + variants, "mnist_combos": records["mnist_combos"]})

# %% [markdown]
# ## Provenance

# %%
findings.provenance_table(records["pie_combos"] + records["mnist_combos"] + variants)
