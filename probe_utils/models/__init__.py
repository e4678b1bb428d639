"""The paper's four model families behind one interface (:class:`GenerativeModel`)."""

from __future__ import annotations

from probe_utils.models.base import GenerativeModel
from probe_utils.models.vae import VAE, VAEFC
from probe_utils.models.wgan_gp import WGANGP, WGANGPFC
from probe_utils.params import check_choice, check_int

#: family name -> class; the names notebooks and the CLI accept.
FAMILIES: dict[str, type[GenerativeModel]] = {
    "wgan_gp": WGANGP,
    "vae": VAE,
    "wgan_gp_fc": WGANGPFC,
    "vae_fc": VAEFC,
}

LABELS = {"wgan_gp": "WGAN-GP", "vae": "VAE", "wgan_gp_fc": "WGAN-GP FC", "vae_fc": "VAE FC"}


def build(family: str, image_size: int = 64, width: int = 64, z_dim: int = 100, **kwargs) -> GenerativeModel:
    """Build a model of ``family`` (one of :data:`FAMILIES`)."""
    check_choice("model", family, FAMILIES)
    check_choice("image_size", image_size, (16, 32, 64, 128))
    check_int("width", width, 1, 1024)
    return FAMILIES[family](image_size=image_size, width=width, z_dim=z_dim, **kwargs)


__all__ = ["FAMILIES", "LABELS", "GenerativeModel", "build", "VAE", "VAEFC", "WGANGP", "WGANGPFC"]
