"""probe_utils: probe data sets, generative models and feature measurements for the
runnable edition of "Bias and Generalization in Deep Generative Models" (Zhao, Ren et al., 2018)."""

__version__ = "0.1.0"
