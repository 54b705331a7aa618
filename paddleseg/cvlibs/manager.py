"""Named registries of components.

A registry maps a ``type`` name (as written in a YAML config) to a class or function. It only maps:
building and validating arguments is :mod:`paddleseg.cvlibs.builder`'s job.

    from paddleseg.cvlibs import manager

    @manager.MODELS.add_component
    class MyModel(nn.Layer): ...
"""
import difflib
from typing import Callable, Dict, Iterator, List, Optional


class Registry:
    """A strict name → component map: a name is registered once, an unknown name is an error."""

    def __init__(self, name: str):
        self.name = name
        self._components: Dict[str, Callable] = {}

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
        return name in self._components

    def __getitem__(self, name: str) -> Callable:
        if name not in self._components:
            raise KeyError(self.unknown_message(name))
        return self._components[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._components))

    @property
    def names(self) -> List[str]:
        return sorted(self._components)

    def closest(self, name: str) -> List[str]:
        """Registered names that look like ``name`` (for 'did you mean' messages)."""
        lowered = {n.lower(): n for n in self._components}
        hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=3, cutoff=0.5)
        return [lowered[h] for h in hits]

    def unknown_message(self, name: str) -> str:
        close = self.closest(name)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"unknown {self.name} type '{name}'.{hint} Registered: {', '.join(self.names) or '(none)'}"

    def __repr__(self) -> str:
        return f"Registry({self.name}: {', '.join(self.names)})"


MODELS = Registry("model")
BACKBONES = Registry("backbone")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
LOSSES = Registry("loss")
OPTIMIZERS = Registry("optimizer")
LR_SCHEDULERS = Registry("lr_scheduler")

ALL = (MODELS, BACKBONES, DATASETS, TRANSFORMS, LOSSES, OPTIMIZERS, LR_SCHEDULERS)
