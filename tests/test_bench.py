import json

import pytest
import torch

from probe_utils.bench import bench, cuda_peak, format_table
from probe_utils.cli import main
from probe_utils.params import ParameterError

TINY = ["--device", "cpu", "--size", "32", "--width", "2", "--fleet", "2", "--iters", "1", "--warmup", "1",
        "--batch-size", "4", "--images", "8", "--n-critic", "1"]



def test_cli_bench_writes_a_table_and_json(tmp_path, capsys):
    out = tmp_path / "b" / "bench.json"
    assert main(["bench", *TINY, "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {"device", "date", "torch", "settings", "render", "measure", "train"} <= set(res)
    assert res["settings"]["fleet"] == 2 and res["settings"]["n_critic"] == 1
    for name in ("dots", "pie", "mnist3"):
        assert res["render"][name]["images_per_s"] > 0
    for name in ("dots count", "pie measure", "mnist3 classify"):
        assert res["measure"][name]["images_per_s"] > 0
    t = res["train"]
    assert t["model_iterations"] == 2 and t["single"]["model_iters_per_s"] > 0 and t["fleet"]["model_iters_per_s"] > 0
    assert t["fleet_speedup"] == pytest.approx(t["fleet"]["model_iters_per_s"] / t["single"]["model_iters_per_s"])
    assert t["flops_per_model_iter"] > 0 and t["peak_flops"] > 0 and 0 < t["fleet"]["mfu"]
    text = capsys.readouterr().out
    assert "fleet speed-up" in text and "dots count" in text


def test_training_part_alone_for_vae():
    res = bench("cpu", "vae", 32, 2, fleet=2, iters=1, warmup=0, batch_size=4, parts="train")
    assert "render" not in res and res["settings"]["n_critic"] is None
    assert "fleet of 2" in format_table(res)


def test_peak_table_and_bad_parameters():
    assert cuda_peak("NVIDIA H100 80GB HBM3")[0] == 989e12
    assert cuda_peak("NVIDIA H100 PCIe")[0] == 756e12
    assert cuda_peak("NVIDIA A100-SXM4-40GB")[0] == 312e12
    assert cuda_peak("NVIDIA L40S")[0] == 362e12 and cuda_peak("NVIDIA L4")[0] == 121e12
    assert cuda_peak("Tesla T4")[0] == 65e12 and cuda_peak("Some GPU")[0] is None
    with pytest.raises(ParameterError, match="size"):
        bench("cpu", size=48)
    with pytest.raises(ParameterError, match="parts"):
        bench("cpu", parts=["render", "fly"])
    assert main(["bench", "--device", "cpu", "--fleet", "0"]) == 2


def test_timed_single_model_loop_is_the_training_loop():
    """The benchmark's one-model loop must keep doing what train() does (same batches, noise and updates)."""
    from probe_utils.bench import _Single
    from probe_utils.models import build
    from probe_utils.render import dots
    from probe_utils.train import ImagePool, TrainConfig, train

    pool = ImagePool(dots.render(count=3, n=32, seed=0, size=32)[0], torch.device("cpu"))
    torch.manual_seed(5)
    a = build("wgan_gp", 32, 2, n_critic=2)
    train(a, pool, TrainConfig(steps=2, batch_size=4), seed=5, progress=False)
    torch.manual_seed(5)
    run = _Single(build("wgan_gp", 32, 2, n_critic=2), pool, 5, 4)
    torch.manual_seed(5)
    run.step()
    run.step()
    for x, y in zip(a.state_dict().values(), run.model.state_dict().values()):
        torch.testing.assert_close(x, y)
