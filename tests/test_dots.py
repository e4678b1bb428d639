"""Dots renderer and numerosity counter: seeding, labels, geometry, counter rules and accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe_utils.features import dots as dotf
from probe_utils.params import ParameterError
from probe_utils.render import dots


def _min_gap(labels: dict[str, np.ndarray]) -> float:
    """Smallest distance between the edges of two discs in the batch (pixels)."""
    c = labels["centers"].astype(np.float64)
    d = np.sqrt(((c[:, :, None, :] - c[:, None, :, :]) ** 2).sum(-1))
    k = c.shape[1]
    d[:, np.arange(k), np.arange(k)] = np.inf
    d = np.where(np.isnan(d), np.inf, d)
    return float(d.min() - 2 * labels["radius"][0])


def _blank(size: int = 64) -> np.ndarray:
    return np.ones((3, size, size), dtype=np.float32)


def _disc(img: np.ndarray, cx: float, cy: float, r: float, color=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Paint an anti-aliased disc onto a (3, H, W) float image, in place; returns it."""
    _, h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    cov = np.clip(r + 0.5 - np.hypot(xx - cx, yy - cy), 0.0, 1.0)
    col = np.asarray(color, dtype=np.float32)[:, None, None]
    img -= cov * (img - col)
    return img


# ---------------------------------------------------------------- renderer


def test_seeding() -> None:
    a, la = dots.render(5, n=16, seed=3)
    b, lb = dots.render(5, n=16, seed=3)
    c, _ = dots.render(5, n=16, seed=4)
    assert torch.equal(a, b)
    np.testing.assert_array_equal(la["centers"], lb["centers"])
    assert not torch.equal(a, c)


@pytest.mark.parametrize("size", dots.SIZES)
def test_shapes_dtype_range(size: int) -> None:
    x, labels = dots.render(4, n=8, seed=0, device="cpu", size=size)
    assert x.shape == (8, 3, size, size) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float((x == 1.0).all(1).float().mean()) > 0.5  # white background
    assert labels["count"].shape == (8,) and labels["count"].dtype == np.int64
    assert labels["centers"].shape == (8, dots.MAX_COUNT, 2)
    assert labels["colors"].shape == (8, dots.MAX_COUNT, 3)
    np.testing.assert_allclose(labels["radius"], dots.RADIUS_FRAC * size)
    x2, _ = dots.render(4, n=8, seed=0, device=torch.device("cpu"), size=size)
    assert torch.equal(x, x2)


def test_default_n() -> None:
    x, labels = dots.render(2)
    assert x.shape[0] == dots.DEFAULT_N == labels["count"].size


@pytest.mark.parametrize("count", [1, 7, 16])
def test_labels_match_request(count: int) -> None:
    size = 64
    _, labels = dots.render(count, n=20, seed=1, size=size)
    assert np.all(labels["count"] == count)
    present = ~np.isnan(labels["centers"][..., 0])
    assert np.all(present.sum(1) == count) and np.all(present[:, :count])
    assert np.all(np.isnan(labels["colors"][:, count:])) and np.all(~np.isnan(labels["colors"][:, :count]))
    cols = labels["colors"][:, :count]
    assert cols.min() >= 0.0 and cols.max() <= dots.COLOR_MAX
    r = labels["radius"][0]
    cen = labels["centers"][:, :count]
    assert cen.min() >= r - 1e-4 and cen.max() <= size - r + 1e-4


@pytest.mark.parametrize("count,size", [(5, 64), (12, 64), (16, 64), (12, 32), (16, 32), (16, 128)])
def test_discs_do_not_overlap(count: int, size: int) -> None:
    _, labels = dots.render(count, n=32, seed=2, size=size)
    assert _min_gap(labels) >= dots.GAP_PX - 1e-3


def test_per_image_counts() -> None:
    want = np.array([1, 2, 2, 10, 10, 16, 3, 1])
    x, labels = dots.render(want, seed=5, size=32)
    assert x.shape[0] == want.size
    np.testing.assert_array_equal(labels["count"], want)
    np.testing.assert_array_equal(dotf.count(x), want)
    x2, l2 = dots.render(list(want), n=want.size, seed=5, size=32)
    assert torch.equal(x, x2)
    assert _min_gap(labels) >= dots.GAP_PX - 1e-3


@pytest.mark.parametrize("kwargs,name", [
    (dict(count=0), "count"),
    (dict(count=40), "count"),
    (dict(count=2.5), "count"),
    (dict(count="3"), "count"),
    (dict(count=[3, 0]), "count"),
    (dict(count=[3, 2.5]), "count"),
    (dict(count=[]), "count"),
    (dict(count=3, n=0), "n"),
    (dict(count=3, n=-4), "n"),
    (dict(count=[3, 4], n=3), "n"),
    (dict(count=3, seed=-1), "seed"),
    (dict(count=3, size=50), "size"),
    (dict(count=3, device="nonsense"), "device"),
])
def test_bad_input(kwargs: dict, name: str) -> None:
    with pytest.raises(ParameterError, match=f"'{name}'"):
        dots.render(**kwargs)


# ---------------------------------------------------------------- counter rules


def test_merged_blob_counts_one_or_split() -> None:
    r = dots.RADIUS_FRAC * 64
    img = _disc(_disc(_blank(), 25, 32, r, (0.2, 0.3, 0.5)), 25 + 2 * r - 0.5, 32, r, (0.5, 0.1, 0.1))
    assert dotf.count(img)[0] == 1
    assert dotf.count(img, split_merged=True)[0] == 2
    stats = dotf.blob_stats(img)
    assert stats["large"][0] == 1 and stats["blobs"][0] == 1


def test_speck_is_ignored() -> None:
    img = _disc(_blank(), 20, 20, dots.RADIUS_FRAC * 64)
    img[:, 50:52, 50:52] = 0.0  # 4 px, well under a quarter of a disc (82 px)
    assert dotf.count(img)[0] == 1
    assert dotf.blob_stats(img)["specks"][0] == 1
    assert dotf.count(img, min_area_frac=0.01)[0] == 2


def test_faint_dot_counts_but_a_trace_is_background() -> None:
    r = dots.RADIUS_FRAC * 64
    img = _disc(_disc(_blank(), 20, 20, r), 45, 45, r, (0.75, 0.75, 0.75))  # darkness 0.25: a faint dot
    assert dotf.count(img)[0] == 2
    assert dotf.blob_stats(img)["faint"][0] == 0
    trace = _disc(_disc(_blank(), 20, 20, r), 45, 45, r, (0.97, 0.97, 0.97))  # darkness 0.03
    assert dotf.count(trace)[0] == 1
    assert dotf.count(trace, threshold=0.01)[0] == 2


def test_uncountable_images_are_refused() -> None:
    from probe_utils.features import degrade

    grey = np.full((3, 32, 32), 0.5, dtype=np.float32)            # an untrained generator's grey
    noise = degrade.noise_images(20, 32, seed=1)
    assert dotf.count(grey)[0] == -1 and dotf.blob_stats(grey)["reason"][0] == 2
    assert (dotf.count(noise) == -1).all()
    assert (dotf.count(degrade.grey_mush(200, 32, seed=2)) == -1).all()
    nan = _disc(_blank(), 20, 20, 5.0)
    nan[0, 3, 3] = np.nan
    assert dotf.count(nan)[0] == -1 and dotf.blob_stats(nan)["reason"][0] == 1
    smear = _blank()
    smear[:, 10:40, 10:30] = 0.2                                    # 600 px: > 3.5 discs of 82 px
    assert dotf.count(smear)[0] == -1 and dotf.blob_stats(smear)["reason"][0] == 3
    assert dotf.count(_blank())[0] == 0                              # blank is a measurement: no dots


def test_blurred_neighbours_stay_apart() -> None:
    from probe_utils.features import degrade

    r = dots.RADIUS_FRAC * 32
    img = _disc(_disc(_blank(32), 10, 16, r), 10 + 2 * r + 2, 16, r, (0.6, 0.6, 0.6))  # 2 px gap, one pale
    assert dotf.count(degrade.blur(img, 1.0))[0] == 2


def test_integer_and_bad_ranges() -> None:
    x, labels = dots.render(3, n=4, seed=2, size=32)
    as_int = np.round(x.numpy() * 255).astype(np.int64)              # integers are read as 0-255
    np.testing.assert_array_equal(dotf.count(as_int), labels["count"])
    with pytest.raises(ParameterError, match="'x'"):
        dotf.count(x.numpy() * 255)                                   # floats beyond [0, 1]
    with pytest.raises(ParameterError, match="'x'"):
        dotf.count(x.numpy() > 0.5)                                   # bool is not an image


@pytest.mark.parametrize("size", [32, 64])
def test_robust_on_generated_like_images(size: int) -> None:
    rows = {r["condition"]: r for r in dotf.robustness_report(n=15, size=size)}
    for cond in ("clean", "blur_0.5", "blur_1", "faint_0.6", "faint_0.35", "blur_1_faint_0.5", "noise_0.05",
                 "average_colour", "border_cut"):
        assert rows[cond]["exact"] >= 0.95, rows[cond]
    assert rows["grey_mush"]["refused"] == 1.0 and rows["noise_images"]["refused"] == 1.0


def test_half_disc_at_border_counts_one() -> None:
    r = dots.RADIUS_FRAC * 64
    img = _disc(_blank(), 0.0, 30, r)
    stats = dotf.blob_stats(img)
    assert stats["count"][0] == 1 and stats["border"][0] == 1
    tiny = _disc(_blank(), -r + 0.8, 30, r)  # a sliver under the speck limit
    assert dotf.count(tiny)[0] == 0


def test_counter_input_types() -> None:
    x, labels = dots.render(np.arange(1, 9), seed=7, size=32)
    want = labels["count"]
    arr = x.numpy()
    np.testing.assert_array_equal(dotf.count(arr), want)
    np.testing.assert_array_equal(dotf.count(arr.astype(np.float64)), want)
    np.testing.assert_array_equal(dotf.count(np.round(arr * 255).astype(np.uint8)), want)
    assert dotf.count(x[3]).tolist() == [4]  # a single (3, H, W) image
    out = dotf.count(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.int64


def test_counter_bad_input() -> None:
    img = _blank()
    with pytest.raises(ParameterError, match="'threshold'"):
        dotf.count(img, threshold=2.0)
    with pytest.raises(ParameterError, match="'min_area_frac'"):
        dotf.count(img, min_area_frac=-1)
    with pytest.raises(ParameterError, match="'connectivity'"):
        dotf.count(img, connectivity=6)
    with pytest.raises(ParameterError, match="'x'"):
        dotf.count(np.ones((2, 1, 8, 8)))


# ---------------------------------------------------------------- counter on renders


def test_blob_centroids_match_labels() -> None:
    x, labels = dots.render(6, n=40, seed=9, size=64)
    b = dotf.blobs(x)
    assert np.all(~b["speck"]) and np.all(~b["large"])
    np.testing.assert_allclose(b["area"] / b["disc_area"], 1.0, atol=0.25)
    for i in range(40):
        got = np.stack([b["cx"][b["image"] == i], b["cy"][b["image"] == i]], 1)
        want = labels["centers"][i, :6]
        dist = np.sqrt(((got[:, None] - want[None]) ** 2).sum(-1)).min(1)
        assert dist.max() < 0.2


def test_split_merged_exact_on_renders() -> None:
    x, labels = dots.render(np.random.default_rng(0).integers(1, 17, 120), seed=11, size=32)
    stats = dotf.blob_stats(x, split_merged=True)
    np.testing.assert_array_equal(stats["count"], labels["count"])
    assert stats["large"].sum() == 0 and stats["specks"].sum() == 0


def _check_accuracy(n: int, size: int, counts: range = range(1, 13), need: float = 0.995) -> None:
    rep = dotf.accuracy_report(n=n, seed=12345, counts=counts, size=size)
    for k in counts:
        assert rep[f"exact_{k}"] >= need, (k, rep[f"exact_{k}"])
    assert rep["exact_worst"] >= need and rep["count_images_per_s"] > 0


def test_counter_accuracy_quick() -> None:
    _check_accuracy(200, 64)


@pytest.mark.slow
@pytest.mark.parametrize("size", [64, 32])
def test_counter_accuracy_full(size: int) -> None:
    _check_accuracy(1000, size)


@pytest.mark.slow
@pytest.mark.parametrize("size", dots.SIZES)
def test_counter_accuracy_dense(size: int) -> None:
    # 13-16 dots crowd a 32 px image: a pale dot squeezed between dark ones is missed in 1-2% of images
    _check_accuracy(300, size, range(13, 17), need=0.98)


def test_reports() -> None:
    rep = dotf.accuracy_report(n=5, counts=[1, 3])
    assert set(rep) >= {"exact_1", "exact_3", "exact_all", "exact_worst", "mean_abs_error", "count_images_per_s"}
    sp = dotf.speed_report(n=50)
    assert sp["render_images_per_s"] > 0 and sp["count_images_per_s"] > 0
    with pytest.raises(ParameterError, match="'counts"):
        dotf.accuracy_report(n=5, counts=[0])


def test_a_ghost_beside_a_dot_counts_unless_faint_blobs_are_left_out() -> None:
    """A VAE-like ghost (darkness 0.12, below FAINT_PEAK) counts in the main reading, not with ``ignore_faint``;
    a dot faded with its whole image still counts in the main reading."""
    r = dots.RADIUS_FRAC * 64
    img = _disc(_disc(_blank(), 20, 20, r), 45, 45, r, (0.88, 0.88, 0.88))
    assert dotf.count(img)[0] == 2 and dotf.blob_stats(img)["faint"][0] == 1
    assert dotf.count(img, ignore_faint=True)[0] == 1
    faded = _disc(_disc(_blank(), 20, 20, r, (0.8, 0.8, 0.8)), 45, 45, r, (0.85, 0.85, 0.85))
    assert dotf.count(faded)[0] == 2 and dotf.count(faded, ignore_faint=True)[0] == 0
    assert dotf.count(_blank(), ignore_faint=True)[0] == 0


def test_faint_blobs_are_rare_among_rendered_dots() -> None:
    """The faint threshold sits below almost every training dot (the docstring says ~0.1%)."""
    shares = dotf.faint_share(n=150, counts=(1, 5), sizes=(32,))
    assert 0.0 <= shares[32] < 0.005
