"""Registering a model family of your own: the interface check, names, the registry's views, and a registered family
going through everything that takes a model name (experiments.run, check_parameters, the CLI, chapters, the sweep)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from probe_utils import experiments, models
from probe_utils.models import GenerativeModel
from probe_utils.params import ParameterError

REPO = Path(__file__).resolve().parent.parent
BUILT_IN = {"wgan_gp": models.WGANGP, "vae": models.VAE, "wgan_gp_fc": models.WGANGPFC, "vae_fc": models.VAEFC}


class MomentMatcher(GenerativeModel):
    """A tiny generator trained to match the per-pixel mean and spread of its training batches (one group)."""

    def __init__(self, image_size: int = 64, width: int = 64, z_dim: int = 100) -> None:
        super().__init__(image_size, width, z_dim)
        self.net = nn.Sequential(nn.Linear(z_dim, 4 * width), nn.ReLU(), nn.Linear(4 * width, 3 * image_size ** 2),
                                 nn.Sigmoid(), nn.Unflatten(1, (3, image_size, image_size)))

    def groups(self) -> dict[str, list[nn.Parameter]]:
        return {"generator": list(self.parameters())}

    def plan(self) -> list[str]:
        return ["generator"]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def loss(self, batch: torch.Tensor, group: str) -> torch.Tensor:
        fake = self.decode(self.latent(batch.shape[0]))
        return ((fake.mean(0) - batch.mean(0)) ** 2).mean() + ((fake.std(0) - batch.std(0)) ** 2).mean()


class NoLoss(MomentMatcher):
    loss = GenerativeModel.loss


class NoSampler(MomentMatcher):
    decode = GenerativeModel.decode


class GhostPlan(MomentMatcher):
    def plan(self) -> list[str]:
        return ["generator", "ghost"]


@pytest.fixture
def registry(monkeypatch):
    """The registry as it was, afterwards (families registered by the test removed, replaced ones put back), and
    $PROBE_UTILS_IMPORT unset during the test and restored after it."""
    before, labels, mods = models.registered(), dict(models.LABELS), set(sys.modules)
    monkeypatch.delenv(models.IMPORT_ENV, raising=False)
    yield models
    for name in list(models.FAMILIES):
        if name not in before:
            models.unregister(name)
    for name, factory in before.items():
        if models.FAMILIES.get(name) is not factory or models.LABELS.get(name) != labels[name]:
            models.register(name, factory, label=labels[name], replace=True)
    for name in set(sys.modules) - mods:
        if name.startswith("user_family_"):
            del sys.modules[name]


def _user_module(folder: Path, module: str, family: str) -> Path:
    """A module file that defines and registers a family of its own."""
    path = folder / f"{module}.py"
    path.write_text(textwrap.dedent(f"""
        import torch
        from torch import nn
        from probe_utils.models import GenerativeModel, register


        class Mine(GenerativeModel):
            def __init__(self, image_size=64, width=64, z_dim=100):
                super().__init__(image_size, width, z_dim)
                self.net = nn.Sequential(nn.Linear(z_dim, 3 * image_size ** 2), nn.Sigmoid(),
                                         nn.Unflatten(1, (3, image_size, image_size)))

            def groups(self):
                return {{"g": list(self.parameters())}}

            def plan(self):
                return ["g"]

            def decode(self, z):
                return self.net(z)

            def loss(self, batch, group):
                return ((self.decode(self.latent(batch.shape[0])).mean(0) - batch.mean(0)) ** 2).mean()


        register({family!r}, Mine, label="Mine")
    """))
    return path


def test_built_in_families_are_registered_and_still_build():
    assert list(models.FAMILIES)[:4] == list(BUILT_IN) and models.registered() == dict(models.FAMILIES)
    assert {k: models.FAMILIES[k] for k in BUILT_IN} == BUILT_IN
    assert {k: models.LABELS[k] for k in BUILT_IN} == {"wgan_gp": "WGAN-GP", "vae": "VAE", "wgan_gp_fc": "WGAN-GP FC",
                                                       "vae_fc": "VAE FC"}
    assert set(models.LABELS) == set(models.FAMILIES)
    for name, cls in BUILT_IN.items():
        net = models.build(name, image_size=32, width=2)
        assert type(net) is cls and net.family == name
    with pytest.raises(TypeError):
        models.FAMILIES["mine"] = MomentMatcher  # a read-only view: register() is the way in


def test_register_builds_labels_and_unregisters(registry):
    registry.register("moments", MomentMatcher, label="Moment matcher")
    assert list(registry.FAMILIES)[-1] == "moments" and registry.LABELS["moments"] == "Moment matcher"
    net = registry.build("moments", image_size=16, width=2, z_dim=8)
    assert net.family == "moments" and net.sample(3).shape == (3, 3, 16, 16)
    registry.register("moments", MomentMatcher)  # the same factory again: nothing changes
    assert registry.LABELS["moments"] == "Moment matcher"
    registry.unregister("moments")
    assert "moments" not in registry.FAMILIES and "moments" not in registry.LABELS
    assert registry.label("moments") == "moments"  # figures fall back to the name
    assert sorted(["moments", "vae", "wgan_gp"], key=registry.order) == ["wgan_gp", "vae", "moments"]
    with pytest.raises(ParameterError, match="'name'.*'wgan_gp'"):
        registry.unregister("moments")


def test_a_factory_function_is_checked_when_it_builds(registry):
    registry.register("moments_fn", lambda **kw: MomentMatcher(**kw))
    assert isinstance(registry.build("moments_fn", 16, 2), MomentMatcher)
    registry.register("not_a_model", lambda **kw: nn.Linear(2, 2))
    with pytest.raises(TypeError, match="returned Linear, not a probe_utils.models.GenerativeModel"):
        registry.build("not_a_model", 16, 2)


@pytest.mark.parametrize("cls,missing", [(NoLoss, r"does not implement loss;"),
                                         (NoSampler, r"does not implement sample \(or decode\);"),
                                         (nn.Module, "must subclass probe_utils.models.GenerativeModel")])
def test_a_class_lacking_part_of_the_interface_is_refused(registry, cls, missing):
    with pytest.raises(TypeError, match=missing) as err:
        registry.register("incomplete", cls)
    assert "the interface: groups()" in str(err.value)
    assert "incomplete" not in registry.FAMILIES


def test_a_constructor_without_the_size_keywords_is_refused(registry):
    class FixedSize(MomentMatcher):
        def __init__(self, image_size: int = 32, width: int = 4) -> None:
            super().__init__(image_size, width, 8)

    with pytest.raises(TypeError, match="image_size, width and z_dim.*lacks z_dim"):
        registry.register("fixed", FixedSize)


def test_a_plan_naming_a_group_it_does_not_have_is_refused_at_build(registry):
    registry.register("ghost", GhostPlan)
    with pytest.raises(ValueError, match=r"plan\(\) names group\(s\) 'ghost'.*its groups: 'generator'"):
        registry.build("ghost", 16, 2)


def test_names_are_checked_and_never_silently_replaced(registry):
    for bad in ("My_Model", "my-model", "1model", "", "x" * 41, None):
        with pytest.raises(ParameterError, match="'name'"):
            registry.register(bad, MomentMatcher)
    with pytest.raises(ValueError, match="'vae' is already registered.*replace=True"):
        registry.register("vae", MomentMatcher)
    assert registry.FAMILIES["vae"] is models.VAE
    registry.register("vae", MomentMatcher, label="not a VAE", replace=True)
    assert registry.FAMILIES["vae"] is MomentMatcher and registry.LABELS["vae"] == "not a VAE"


def test_unknown_model_names_list_the_registered_ones(registry):
    registry.register("moments", MomentMatcher)
    with pytest.raises(ParameterError) as err:
        experiments.check_parameters("numerosity", models=["vae", "momentz"], values=[2], seeds=1, preset="ci")
    assert err.value.parameter == "models[1]"
    assert ", ".join(map(repr, registry.FAMILIES)) + "; got 'momentz'" in str(err.value)
    assert "register" in str(err.value)


def test_recipes_give_unnamed_families_no_settings(registry):
    registry.register("moments", MomentMatcher)
    for recipe in experiments.RECIPES:
        assert experiments.recipe_settings(recipe, "moments") == {}


def test_a_registered_family_runs_end_to_end_at_ci(registry, tmp_path):
    registry.register("moments", MomentMatcher, label="Moment matcher")
    store = tmp_path / "results"
    (rec,) = experiments.run("numerosity", models=["moments"], values=[2], seeds=[0], preset="ci", device="cpu",
                             store=store, progress=False)
    assert rec["model"] == "moments" and rec["provenance"]["steps"] == experiments.PRESETS["ci"].steps
    assert rec["params"]["recipe_settings"] == {} and "n_critic" not in rec["params"]
    assert rec["provenance"]["n_parameters"] == registry.build("moments", 32, 8).n_parameters()
    assert len(rec["result"]["distribution"]) == experiments.EXPERIMENTS["numerosity"].bins
    (path,) = store.rglob("*.json")
    assert path.relative_to(store).parts[:3] == ("numerosity", "ci", "moments")
    again = experiments.run("numerosity", models="moments", values=[2], seeds=[0], preset="ci", device="cpu",
                            store=store, progress=False)
    assert again == [rec]  # stored and found again by its family's name
    from probe_utils import plots

    fig = plots.impulse_response([rec])
    assert fig.axes[0].get_title().startswith("Moment matcher")
    registry.unregister("moments")  # records of a family no longer registered are still drawn, under its name
    fig = plots.training_vs_generated([rec], experiments.training_samples("numerosity", "ci"))
    assert [ax.get_title().split("\n")[:2] for ax in fig.axes] == [["training", "2"], ["moments", "on 2, seed 0"]]


def test_import_modules_by_path_and_by_name(registry, tmp_path, monkeypatch):
    path = _user_module(tmp_path, "user_family_a", "family_a")
    assert registry.import_modules([str(path)]) == [str(path.resolve())]
    assert registry.LABELS["family_a"] == "Mine" and registry.build("family_a", 16, 2).sample(2).shape[0] == 2
    assert os.environ[registry.IMPORT_ENV] == str(path.resolve())  # processes started from here import it too
    registry.import_modules(str(path))  # once only: the family is not registered twice
    monkeypatch.syspath_prepend(str(tmp_path))
    _user_module(tmp_path, "user_family_b", "family_b")
    registry.import_modules("['user_family_b']")  # papermill's -p passes a list as its literal
    assert "family_b" in registry.FAMILIES
    assert os.environ[registry.IMPORT_ENV].split(",") == [str(path.resolve()), "user_family_b"]
    with pytest.raises(ParameterError, match=r"'imports\[1\]' must be a module importable here.*'no_such_module'"):
        registry.import_modules(["user_family_b", "no_such_module"])
    with pytest.raises(ParameterError, match=r"'imports\[0\]'"):
        registry.import_modules([str(tmp_path / "missing.py")])
    for bad in (3, "[user_family_b"):
        with pytest.raises(ParameterError, match="'imports'"):
            registry.import_modules(bad)


def test_chapters_take_an_imports_parameter(registry, tmp_path):
    from probe_utils.params import check_chapter, notebook_parameters

    path = _user_module(tmp_path, "user_family_c", "family_c")
    for stem in ("01_numerosity", "02_color_size_location", "03_convolution_prototype", "04_independence",
                 "05_combinations", "06_clevr"):
        params = notebook_parameters(REPO / "notebooks" / f"{stem}.py")
        assert params["imports"] == [], stem
    params = notebook_parameters(REPO / "notebooks" / "01_numerosity.py")
    with pytest.raises(ParameterError, match="'models\\[0\\]'"):
        check_chapter("01_numerosity", {**params, "preset": "ci", "models": ["family_c"]})
    check_chapter("01_numerosity", {**params, "preset": "ci", "models": ["family_c"], "imports": [str(path)]})


def test_the_sweep_plans_runs_of_an_imported_family(registry, tmp_path):
    from probe_utils import sweep

    path = _user_module(tmp_path, "user_family_d", "family_d")
    plan = sweep.plan_runs(["01_numerosity"], preset="ci", store=tmp_path / "results",
                           overrides={"imports": [str(path)], "models": ["family_d", "vae"], "counts": [2],
                                      "seeds": 1})
    assert sorted(t.model for t in plan.todo) == ["family_d", "vae"]
    assert str(path.resolve()) in os.environ[registry.IMPORT_ENV]  # the sweep's workers import it too


def test_cli_imports_a_module_before_checking_names(registry, tmp_path, capsys):
    from probe_utils import cli

    path = _user_module(tmp_path, "user_family_e", "family_e")
    rc = cli.main(["run", "numerosity", "--import", str(path), "--models", "family_f", "--values", "2",
                   "--preset", "ci", "--device", "cpu", "--store", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert rc == 2 and "'family_e'" in err and "got 'family_f'" in err
    assert cli.main(["run", "numerosity", "--import", "no_such_module", "--values", "2"]) == 2
    assert "'import[0]'" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_the_environment_variable_imports_modules_in_a_new_process(tmp_path):
    path = _user_module(tmp_path, "user_family_g", "family_g")
    env = {**os.environ, models.IMPORT_ENV: str(path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", "from probe_utils import models; print(list(models.FAMILIES))"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert "'family_g'" in out
