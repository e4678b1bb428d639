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
# # Colour, size and location: the response to one trained value
#
# **The claim (Sec. 4.1.2–4.1.3 of the paper, {cite:t}`zhao2018bias`).** Train on pies whose proportion of red is always the same (and whose
# size and location vary at random). The generated proportions of red spread around the trained value like a
# Gaussian, sharper near 10% and 90% than near 50%, as Weber's law would have it {cite:p}`stevens1975psychophysics`,
# and symmetric. Fixing the size or
# the location instead gives much sharper responses; the size response is skewed towards larger discs, the location
# response is symmetric.
#
# **How we probe it.** Three experiments on the pie data set, each fixing one feature at a trained value and drawing
# the others uniformly: the red proportion, the radius, and the x position of the centre (with y uniform). We measure
# the same feature on every generated image: red as the share of the disc's area, read from the red channel's ink
# (the paper's rule, the share of disc pixels whose R exceeds G and B, reads blurred pies too red; each record keeps it
# as a second reading), the radius from the disc's area (and, on the runs made since it existed, from its ink mass,
# which blur does not move), the position from its centroid (see the {ref}`methods <methods-datasets>` and the
# {doc}`data-sets page <00_datasets>` for their accuracy). Beyond the paper, a PixelCNN and a small diffusion model
# are trained on the red experiment too (parameter `other_models`; the scorecard marks diffusion as beyond the paper).

# %% tags=["parameters"]
preset = "cpu"  # ci | cpu | colab | paper
models = ["wgan_gp", "vae"]  # any of wgan_gp, vae, wgan_gp_fc, vae_fc, pixelcnn, diffusion, or a family `imports` registers
imports = []  # modules to import first (names or .py paths) that register families of your own: see 93_probe_your_model
red_values = [0.1, 0.3, 0.5, 0.7, 0.9]  # trained proportions of red, in [0, 1]
size_values = [0.5, 0.6, 0.7]  # trained radii, in half-widths, in [0.4, 0.8]
location_values = [-0.1, 0.0, 0.1]  # trained x of the centre, in half-widths, in [-0.2, 0.2]
other_models = ["pixelcnn", "diffusion"]  # families beyond the paper's four, run on the red experiment only
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
# One call per feature; stored records with exactly these settings are reused.

# %%
from probe_utils import experiments, findings, params, plots
from probe_utils.experiments import EXPERIMENTS

params.check_chapter("02_color_size_location", globals())  # every parameter, by its own name, before any work
common = dict(models=models, seeds=seeds, preset=preset, device=device, reuse=reuse)
experiments.check_parameters("pie_red", values=red_values, **common)  # fail fast on any bad parameter
experiments.check_parameters("pie_size", values=size_values, **common)
experiments.check_parameters("pie_location", values=location_values, **common)
records = {
    "pie_red": experiments.run("pie_red", values=red_values, **common)
               + (experiments.run("pie_red", values=red_values, **{**common, "models": other_models})
                  if params.names_any(other_models) else []),
    "pie_size": experiments.run("pie_size", values=size_values, **common),
    "pie_location": experiments.run("pie_location", values=location_values, **common),
}
findings.preset_banner(preset)

# %% [markdown]
# ## Training images and generated images
#
# For the red experiment: training pies (each annotated with its measured red share) next to each model's samples
# ({numref}`fig-pie-samples`).

# %% mystnb={"figure": {"caption": "Training pies with one fixed red proportion per row (left, each labelled with its measured red share) and each model family's samples after training on it. Cf. the paper's Fig. 4. A panel titled *fails its gate* shows a run that fails its training-health gate: shown, not scored.", "name": "fig-pie-samples"}}
plots.training_vs_generated(records["pie_red"], experiments.training_samples("pie_red", preset));

# %% [markdown]
# ## The responses (the paper's Fig. 5)
#
# For each trained value (arrow), the density of the generated feature; bands are 95% intervals
# ({numref}`fig-pie-responses`).

# %% mystnb={"figure": {"caption": "The response to one trained value of the red proportion, the radius and the x position (columns), per model family (rows): for each trained value (arrow), the density of the generated feature; bands are 95% intervals. Cf. the paper's Fig. 5 (WGAN-GP) and Fig. 12 (VAE). Dotted: a response all of whose runs fail their training-health gate (shown, not scored); where only some seeds fail, the line is the mean of those that pass, as the verdicts score it; the second line of a panel's title says how many seeds are behind its lines.", "name": "fig-pie-responses"}}
plots.feature_responses(records);

# %% [markdown]
# ## Shape, width and symmetry of each response

# %%
findings.shape_table(records["pie_red"], EXPERIMENTS["pie_red"].centres)

# %%
findings.shape_table(records["pie_size"], EXPERIMENTS["pie_size"].centres)

# %%
findings.shape_table(records["pie_location"], EXPERIMENTS["pie_location"].centres)

# %% [markdown]
# ## What we see, next to what the paper reports

# %%
findings.pie_findings(records)

# %% [markdown]
# ## Provenance

# %%
findings.provenance_table([r for recs in records.values() for r in recs])
