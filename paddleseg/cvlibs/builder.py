"""Validate and build components from config mappings.

A component mapping is ``{type: Name, arg: value, ...}``. Its arguments are checked against the
registered class's signature, so a typo is caught before anything is built; a nested mapping with a
``type`` (``model.backbone``, ``train_dataset.transforms[i]``) is a component too and is built first.
"""
import copy
import difflib
import inspect
import re
import typing
from typing import Any, Callable, Dict, List, Optional, Sequence

from paddleseg.cvlibs import manager
from paddleseg.errors import ConfigError

# An argument of this name holds components of that registry, when the type name alone is ambiguous.
_ARGUMENT_REGISTRY = {
    "backbone": manager.BACKBONES,
    "transforms": manager.TRANSFORMS,
    "model": manager.MODELS,
    "loss": manager.LOSSES,
}


def is_component(value: Any) -> bool:
    return isinstance(value, dict) and "type" in value


def closest(name: str, candidates: Sequence[str]) -> List[str]:
    return difflib.get_close_matches(str(name), list(candidates), n=3, cutoff=0.5)


def did_you_mean(name: str, candidates: Sequence[str]) -> str:
    hits = closest(name, candidates)
    return f" Did you mean: {', '.join(hits)}?" if hits else ""


def resolve(type_name: Any, where: str, registry: Optional[manager.Registry] = None,
            origin: Callable[[str], str] = str) -> Callable:
    """The registered component for ``type_name``; ``registry`` first, then every registry."""
    if not isinstance(type_name, str):
        raise ConfigError(f"{origin(where)}: 'type' must be a name, got {type_name!r}")
    if registry is not None and type_name in registry:
        return registry[type_name]
    owners = [r for r in manager.ALL if type_name in r]
    if len(owners) == 1:
        return owners[0][type_name]
    if len(owners) > 1:
        raise ConfigError(f"{origin(where)}: type '{type_name}' is ambiguous, registered as "
                          f"{', '.join(r.name for r in owners)}")
    if registry is not None:
        raise ConfigError(f"{origin(where)}: {registry.unknown_message(type_name)}")
    every = sorted({n for r in manager.ALL for n in r.names})
    raise ConfigError(f"{origin(where)}: unknown type '{type_name}'.{did_you_mean(type_name, every)}")


def _accepted_arguments(component: Callable):
    """(names, required names, accepts **kwargs, annotations) of a component's constructor."""
    signature = inspect.signature(component)
    names, required, var_kw = [], [], False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.append(p.name)
            if p.default is p.empty:
                required.append(p.name)
    try:
        hints = typing.get_type_hints(component.__init__ if inspect.isclass(component) else component)
    except Exception:  # unresolvable forward references: skip type checks, keep name checks
        hints = {}
    return names, required, var_kw, hints


def _type_matches(value: Any, hint: Any) -> bool:
    """Loose check of a YAML value against a simple annotation; unknown annotations pass."""
    if value is None:
        return hint is type(None) or type(None) in typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        return any(_type_matches(value, h) for h in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_component(cfg: Dict, where: str, registry: Optional[manager.Registry] = None,
                    origin: Callable[[str], str] = str) -> None:
    """Raise :class:`ConfigError` unless ``cfg`` would build: known type, known, typed, complete arguments."""
    if not is_component(cfg):
        raise ConfigError(f"{origin(where)}: expected a mapping with a 'type' key, got {cfg!r}")
    component = resolve(cfg["type"], f"{where}.type", registry, origin)
    names, required, var_kw, hints = _accepted_arguments(component)
    label = getattr(component, "__name__", cfg["type"])
    for key, value in cfg.items():
        if key == "type":
            continue
        path = f"{where}.{key}"
        if key not in names and not var_kw:
            raise ConfigError(f"{origin(path)}: {label} has no argument '{key}'.{did_you_mean(key, names)} "
                              f"Valid arguments: {', '.join(names) or '(none)'}")
        if key in hints and not is_component(value) and not _type_matches(value, hints[key]):
            raise ConfigError(f"{origin(path)}: {label}.{key} expects {_type_name(hints[key])}, "
                              f"got {value!r} ({type(value).__name__})")
        check_nested(value, path, key, origin)
    missing = [n for n in required if n not in cfg]
    if missing:
        raise ConfigError(f"{origin(where)}: {label} is missing required argument(s): {', '.join(missing)}")


def check_nested(value: Any, path: str, key: str, origin: Callable[[str], str] = str) -> None:
    hint = _ARGUMENT_REGISTRY.get(key)
    if is_component(value):
        check_component(value, path, hint, origin)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if is_component(item):
                check_component(item, f"{path}[{i}]", hint, origin)


# What a constructor raises about its arguments (our components raise ValueError; Paddle's own classes
# also assert or raise TypeError): a config error, not a bug.
ARGUMENT_ERRORS = (ValueError, AssertionError, TypeError)


def build_component(cfg: Dict, registry: Optional[manager.Registry] = None, where: str = "",
                    origin: Callable[[str], str] = str, **extra: Any) -> Any:
    """Build ``cfg`` (validated by :func:`check_component`); ``extra`` adds arguments from code.

    What the constructor raises about its arguments (:data:`ARGUMENT_ERRORS`) becomes a
    :class:`ConfigError` naming ``origin(key path)``: the argument's path when the message names
    exactly one of the arguments the config gives, else the component's.
    """
    cfg = copy.deepcopy(cfg)  # building never changes the config it reads
    component = resolve(cfg.pop("type"), f"{where}.type", registry, origin)
    kwargs = {k: _build_value(v, f"{where}.{k}", k, origin) for k, v in cfg.items()}
    kwargs.update(extra)
    try:
        return component(**kwargs)
    except ARGUMENT_ERRORS as e:
        raise ConfigError(argument_error_message(e, component, list(cfg), where, origin)) from e


def argument_error_message(error: BaseException, component: Callable, keys: Sequence[str], where: str,
                           origin: Callable[[str], str] = str) -> str:
    """``'file: key.path: message'`` for what ``component``'s constructor raised (on one line)."""
    message = " ".join(str(error).split()) or type(error).__name__
    named = [k for k in keys if re.search(rf"(?<!\w){re.escape(k)}(?!\w)", message)]
    path = f"{where}.{named[0]}" if len(named) == 1 else where
    label = getattr(component, "__name__", str(component))
    if not re.match(r"[A-Za-z_]\w*[.:]", message):  # the message does not start by naming its class
        message = f"{label}: {message}"
    return f"{origin(path)}: {message}"


def _build_value(value: Any, where: str, key: str, origin: Callable[[str], str] = str) -> Any:
    hint = _ARGUMENT_REGISTRY.get(key)
    if is_component(value):
        return build_component(value, hint, where, origin)
    if isinstance(value, list):
        return [build_component(v, hint, f"{where}[{i}]", origin) if is_component(v) else v
                for i, v in enumerate(value)]
    return value
