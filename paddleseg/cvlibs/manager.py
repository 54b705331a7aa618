"""Named registries of components.

A registry maps a ``type`` name (as written in a YAML config) to a class or function. It only maps:
building and validating arguments is :mod:`paddleseg.cvlibs.builder`'s job.

    from paddleseg.cvlibs import manager

    @manager.MODELS.add_component
    class MyModel(nn.Layer): ...
"""
import difflib
import importlib
from typing import Callable, Dict, Iterator, List, Optional

# The packages whose modules register the project's components. They import Paddle, so they are
# imported when a project registry is first looked up, not when ``paddleseg`` is imported: the
# deployment package (``paddleseg.deploy``) must import without Paddle.
COMPONENT_PACKAGES = ("paddleseg.models", "paddleseg.losses", "paddleseg.optimizers", "paddleseg.datasets",
                      "paddleseg.transforms")
_loaded = False


def load_components() -> None:
    """Import every package that registers components (once; later calls do nothing)."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # first: lookups made while these modules import see what is registered so far
    for package in COMPONENT_PACKAGES:
        importlib.import_module(package)


class Registry:
    """A strict name → component map: a name is registered once, an unknown name is an error."""

    def __init__(self, name: str, loader: Optional[Callable[[], None]] = None):
        self.name = name
        self._components: Dict[str, Callable] = {}
        self._loader = loader  # fills the registry before its first lookup (the project's registries)

    def _table(self) -> Dict[str, Callable]:
        if self._loader is not None:
            self._loader()
        return self._components

    def add_component(self, component: Callable = None, *, name: Optional[str] = None):
        """Register ``component`` under ``name`` (default: its ``__name__``).

        Usable as ``@registry.add_component`` or ``registry.add_component(cls, name="alias")``.
        """
        if component is None:
            return lambda c: self.add_component(c, name=name)
        if not callable(component):
            raise TypeError(f"{self.name}: only classes and functions can be registered, got {component!r}")
        key = name or component.__name__
        if key in self._components:
            raise KeyError(f"{self.name}: '{key}' is registered already (by {self._components[key]!r})")
        self._components[key] = component
        return component

    def __contains__(self, name: str) -> bool:
        return name in self._table()

    def __getitem__(self, name: str) -> Callable:
        if name not in self._table():
            raise KeyError(self.unknown_message(name))
        return self._components[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._table()))

    @property
    def names(self) -> List[str]:
        return sorted(self._table())

    def closest(self, name: str) -> List[str]:
        """Registered names that look like ``name`` (for 'did you mean' messages)."""
        lowered = {n.lower(): n for n in self._table()}
        hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=3, cutoff=0.5)
        return [lowered[h] for h in hits]

    def unknown_message(self, name: str) -> str:
        close = self.closest(name)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"unknown {self.name} type '{name}'.{hint} Registered: {', '.join(self.names) or '(none)'}"

    def __repr__(self) -> str:
        return f"Registry({self.name}: {', '.join(self.names)})"


MODELS = Registry("model", load_components)
BACKBONES = Registry("backbone", load_components)
DATASETS = Registry("dataset", load_components)
TRANSFORMS = Registry("transform", load_components)
LOSSES = Registry("loss", load_components)
OPTIMIZERS = Registry("optimizer", load_components)
LR_SCHEDULERS = Registry("lr_scheduler", load_components)

ALL = (MODELS, BACKBONES, DATASETS, TRANSFORMS, LOSSES, OPTIMIZERS, LR_SCHEDULERS)
