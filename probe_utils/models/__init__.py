"""Model families behind one interface, and the route to probe a model of your own.

A family is a name that notebooks, the CLI and the sweep accept (``models=["my_model"]``), registered with
``register("my_model", MyModel, label="My model")``; the paper's four families are registered the same way below.

The interface (:class:`GenerativeModel`, an ``nn.Module``; the training loop in :mod:`probe_utils.train` needs no
more):

- construction ``factory(image_size=..., width=..., z_dim=..., **options)``: the class itself, or a function that
  returns an instance (``width`` is the preset's network width; scale your layers with it);
- ``groups() -> {name: [parameters]}``: one Adam optimiser per group (class attributes ``lr`` and ``betas``);
- ``plan() -> [group, ...]``: the groups updated, in this order, within one training iteration (each a key of
  ``groups()``);
- ``loss(batch, group) -> scalar tensor`` on a batch of training images, float (n, 3, H, W) in [0, 1];
- ``sample(n, generator=None) -> (n, 3, H, W)`` images in [0, 1]; or instead ``decode(z)`` (latents from
  ``latent(n, generator)``, standard normal by default) and the base class's ``sample``.

A class is checked when it is registered, every built model when it is built; what is missing is named.
Modules listed in the environment variable ``PROBE_UTILS_IMPORT`` (comma-separated module names or ``.py`` paths) are
imported with this package, so their families exist in every process (CLI, sweep workers, notebook kernels); the CLI's
``--import`` and the chapters' ``imports`` parameter import them and add them to that variable.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Union

from probe_utils.models.base import GenerativeModel
from probe_utils.models.diffusion import Diffusion
from probe_utils.models.pixelcnn import PixelCNN
from probe_utils.models.vae import VAE, VAEFC
from probe_utils.models.wgan_gp import WGANGP, WGANGPFC
from probe_utils.params import ParameterError, check_choice, check_int

#: a family's factory: a GenerativeModel subclass or a function (image_size=, width=, z_dim=, **options) -> model
Factory = Union[type[GenerativeModel], Callable[..., GenerativeModel]]

_FACTORIES: dict[str, Factory] = {}
#: family name -> factory, in registration order: a read-only live view of the registry
FAMILIES: Mapping[str, Factory] = MappingProxyType(_FACTORIES)
#: family name -> its label in figures and tables (kept in step with the registry)
LABELS: dict[str, str] = {}
#: the families the paper (or its poster, which adds PixelCNN) reports on; the scorecard marks every other family,
#: diffusion and your own, as beyond the paper
PAPER_FAMILIES: frozenset[str] = frozenset({"wgan_gp", "vae", "wgan_gp_fc", "vae_fc", "pixelcnn"})

#: the environment variable naming modules to import first (comma-separated module names or .py paths)
IMPORT_ENV = "PROBE_UTILS_IMPORT"
INTERFACE = ("groups() -> {group: [parameters]}, plan() -> [group, ...] naming only keys of groups(), "
             "loss(batch, group) -> scalar tensor, and either sample(n, generator) -> (n,3,H,W) images in [0,1] or "
             "decode(z) (with latent(n, generator)); built as factory(image_size=, width=, z_dim=, **options)")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")


def _inherited(cls: type, method: str) -> bool:
    """Whether ``cls`` still has the base class's placeholder of ``method``."""
    return getattr(cls, method, None) is getattr(GenerativeModel, method)


def missing_methods(cls: type) -> list[str]:
    """The methods of the interface a GenerativeModel subclass leaves unimplemented (empty: none)."""
    missing = [m for m in ("groups", "plan", "loss") if _inherited(cls, m)]
    if _inherited(cls, "sample") and _inherited(cls, "decode"):
        missing.append("sample (or decode)")
    return missing


def _check_class(cls: type, name: str) -> None:
    """TypeError naming what a family class lacks: the base class, a method, or a constructor keyword."""
    where = f"model family {name!r} ({cls.__qualname__})"
    if not issubclass(cls, GenerativeModel):
        raise TypeError(f"{where} must subclass probe_utils.models.GenerativeModel (an nn.Module); the interface: "
                        f"{INTERFACE}")
    missing = missing_methods(cls)
    if missing:
        raise TypeError(f"{where} does not implement {', '.join(missing)}; the interface: {INTERFACE}")
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # a signature Python cannot read: the build check remains
        return
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        lacks = [k for k in ("image_size", "width", "z_dim") if k not in params]
        if lacks:
            raise TypeError(f"{where} must accept the keywords image_size, width and z_dim (and pass them to "
                            f"GenerativeModel.__init__); its constructor lacks {', '.join(lacks)}")


def check_model(model: Any, name: str) -> GenerativeModel:
    """``model`` if it is a working instance of the interface: a GenerativeModel implementing every method, whose
    ``groups()`` is a non-empty mapping of non-empty parameter lists and whose ``plan()`` names only its groups;
    otherwise TypeError or ValueError naming what is wrong."""
    if not isinstance(model, GenerativeModel):
        raise TypeError(f"the factory of model family {name!r} returned {type(model).__qualname__}, not a "
                        f"probe_utils.models.GenerativeModel (an nn.Module)")
    _check_class(type(model), name)
    groups = model.groups()
    if not isinstance(groups, Mapping) or not groups:
        raise TypeError(f"model family {name!r}: groups() must return a non-empty dict {{group: [parameters]}}; "
                        f"got {groups!r}")
    empty = [g for g, ps in groups.items() if not list(ps)]
    if empty:
        raise ValueError(f"model family {name!r}: group(s) {', '.join(map(repr, empty))} of groups() hold no "
                         f"parameters (each group is trained by its own optimiser)")
    plan = model.plan()
    if isinstance(plan, str) or not isinstance(plan, (list, tuple)) or not plan:
        raise TypeError(f"model family {name!r}: plan() must return a non-empty list of group names; got {plan!r}")
    unknown = [g for g in dict.fromkeys(plan) if g not in groups]
    if unknown:
        raise ValueError(f"model family {name!r}: plan() names group(s) {', '.join(map(repr, unknown))} that "
                         f"groups() does not have (its groups: {', '.join(map(repr, groups))}); every group in plan() "
                         f"must be a key of groups()")
    return model


def register(name: str, factory: Factory, *, label: str | None = None, replace: bool = False) -> Factory:
    """Register a model family under ``name`` (lower case: a letter, then letters, digits or ``_``) so that every
    call that takes a model name accepts it; ``label`` names it in figures (default: the name). A name already
    registered to another factory is refused unless ``replace``. Returns ``factory``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ParameterError(f"parameter 'name' must be a lower-case identifier of at most 40 characters (a letter, "
                             f"then letters, digits or _), such as 'my_model'; got {name!r}")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise ParameterError(f"parameter 'label' must be a non-empty string or None; got {label!r}")
    if isinstance(factory, type):
        _check_class(factory, name)
    elif not callable(factory):
        raise TypeError(f"model family {name!r}: the factory must be a GenerativeModel subclass or a function "
                        f"(image_size=, width=, z_dim=, **options) -> GenerativeModel; got {factory!r}")
    old = _FACTORIES.get(name)
    if old is not None and old is not factory and not replace:
        raise ValueError(f"model family {name!r} is already registered (to {getattr(old, '__qualname__', old)}); "
                         f"choose another name or pass replace=True")
    _FACTORIES[name] = factory
    LABELS[name] = label if label is not None else (LABELS.get(name, name) if old is factory else name)
    return factory


def unregister(name: str) -> None:
    """Remove a registered family (for tests and notebooks that register a family of their own)."""
    check_family("name", name)
    del _FACTORIES[name]
    LABELS.pop(name, None)


def beyond_paper(name: str) -> bool:
    """Whether family ``name`` is one the paper (and its poster) did not report on."""
    return name not in PAPER_FAMILIES


def registered() -> dict[str, Factory]:
    """The registered families (name -> factory), in registration order."""
    return dict(_FACTORIES)


def check_family(parameter: str, name: Any) -> str:
    """``name`` if it is a registered family; else ParameterError naming ``parameter`` and listing the families."""
    if name not in _FACTORIES:
        allowed = ", ".join(repr(n) for n in _FACTORIES)
        raise ParameterError(f"parameter {parameter!r} must be one of {allowed}; got {name!r} (a family of your own "
                             f"must be registered first: probe_utils.models.register, imported with --import, the "
                             f"chapters' imports parameter or ${IMPORT_ENV})", parameter)
    return name


def label(name: str) -> str:
    """A family's label for figures; an unregistered name is its own label."""
    return LABELS.get(name, name)


def order(name: str) -> tuple[int, str]:
    """Sort key of family names: registered families in registration order, then any other by name."""
    names = list(_FACTORIES)
    return (names.index(name), "") if name in names else (len(names), str(name))


def accepts(name: str, option: str) -> bool:
    """Whether family ``name``'s factory takes the keyword ``option`` by name (e.g. the WGANs' ``n_critic``)."""
    try:
        return option in inspect.signature(_FACTORIES[name]).parameters
    except (KeyError, TypeError, ValueError):
        return False


def build(family: str, image_size: int = 64, width: int = 64, z_dim: int = 100, **kwargs) -> GenerativeModel:
    """Build a model of ``family`` (one of :data:`FAMILIES`), checked against the interface."""
    check_family("model", family)
    check_choice("image_size", image_size, (16, 32, 64, 128))
    check_int("width", width, 1, 1024)
    model = check_model(_FACTORIES[family](image_size=image_size, width=width, z_dim=z_dim, **kwargs), family)
    if model.family != family:  # checkpoints and progress bars name the family a model was built as
        model.family = family
    return model


def _entries(modules: str | Iterable[Any], source: str) -> list[str]:
    """Module entries from a list, a comma-separated string or a list literal such as "['a', 'b']" (papermill's
    ``-p`` passes lists as strings)."""
    if isinstance(modules, str) and modules.strip().startswith(("[", "(")):
        import ast

        try:
            modules = list(ast.literal_eval(modules.strip()))
        except (ValueError, SyntaxError, TypeError):
            raise ParameterError(f"parameter {source!r} must be a list of module names or .py paths such as "
                                 f"['my_models']; got {modules!r}", source) from None
    if isinstance(modules, str):
        return [m.strip() for m in modules.split(",") if m.strip()]
    if not isinstance(modules, (list, tuple)):
        raise ParameterError(f"parameter {source!r} must be a list of module names or .py paths; got {modules!r}",
                             source)
    out = []
    for i, m in enumerate(modules):
        if not isinstance(m, str) or not m.strip():
            raise ParameterError(f"parameter '{source}[{i}]' must be a module name or a .py path; got {m!r}",
                                 f"{source}[{i}]")
        out.append(m.strip())
    return out


def _import_one(entry: str) -> str:
    """Import a module by name or a ``.py`` file by path; return what to keep in :data:`IMPORT_ENV`."""
    if entry.endswith(".py") or os.sep in entry:
        path = Path(entry).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no file {path}")
        mod_name = path.stem
        known = sys.modules.get(mod_name)
        if known is not None and Path(getattr(known, "__file__", "") or "").resolve() == path:
            return str(path)
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{path} is not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(mod_name, None)
            raise
        return str(path)
    importlib.import_module(entry)
    return entry


def import_modules(modules: str | Iterable[str], *, source: str = "imports", export: bool = True) -> list[str]:
    """Import modules (names or ``.py`` paths; a list, or one comma-separated string) that register model
    families, and (``export``) add them to ``$PROBE_UTILS_IMPORT`` so that processes started from this one (sweep
    workers, notebook kernels) import them too. ParameterError names ``source`` for a module that cannot be found;
    an error raised while the module runs (e.g. a refused registration) propagates as it is."""
    done = []
    for i, entry in enumerate(_entries(modules, source)):
        try:
            done.append(_import_one(entry))
        except (ImportError, FileNotFoundError) as e:
            named = isinstance(e, ModuleNotFoundError) and e.name and (entry + ".").startswith(e.name + ".")
            if not (named or isinstance(e, FileNotFoundError) or "not a Python module" in str(e)):
                raise  # the module was found but failed inside: its own error says why
            raise ParameterError(f"parameter '{source}[{i}]' must be a module importable here (on sys.path) or a "
                                 f".py file that registers model families; got {entry!r} ({type(e).__name__}: {e})",
                                 f"{source}[{i}]") from None
    if export and done:
        have = _entries(os.environ.get(IMPORT_ENV, ""), IMPORT_ENV)
        os.environ[IMPORT_ENV] = ",".join(dict.fromkeys(have + done))
    return done


register("wgan_gp", WGANGP, label="WGAN-GP")
register("vae", VAE, label="VAE")
register("wgan_gp_fc", WGANGPFC, label="WGAN-GP FC")
register("vae_fc", VAEFC, label="VAE FC")
# beyond the paper's four (the poster names PixelCNN; diffusion models postdate the paper)
register("pixelcnn", PixelCNN, label="PixelCNN")
register("diffusion", Diffusion, label="Diffusion")

if os.environ.get(IMPORT_ENV, "").strip():  # last: the modules import this package, now complete
    import_modules(os.environ[IMPORT_ENV], source=IMPORT_ENV, export=False)

__all__ = ["FAMILIES", "LABELS", "Factory", "GenerativeModel", "INTERFACE", "accepts", "build", "check_family",
           "check_model", "import_modules", "label", "missing_methods", "order", "register", "registered",
           "unregister", "Diffusion", "PixelCNN", "VAE", "VAEFC", "WGANGP", "WGANGPFC"]
