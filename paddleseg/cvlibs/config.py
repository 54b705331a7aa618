"""YAML training configs: ``_base_`` inheritance, ``--opts`` overrides, validation, lazy building.

    cfg = Config("configs/espnetv2/espnetv2_cityscapes_1024x512_120k.yml", opts=["batch_size=2"])
    model = cfg.model          # built on first access, then cached
    optimizer = cfg.optimizer  # of cfg.model's parameters, driven by cfg.lr_scheduler (over cfg.iters)

Every component is read the same way, as a property: ``model``, ``train_dataset``, ``val_dataset``,
``test_dataset``, ``loss``, ``lr_scheduler``, ``optimizer``; plain values are ``iters``, ``batch_size``,
``test_config`` and ``recompute`` (true: recompute activations in training's backward pass, as
``train.py --recompute``; paddleseg/models/recompute.py).

Inheritance: ``_base_`` names one file or a list of files, relative to the file that names them,
resolved recursively; a file named several times (a base shared by two files) is read once. Mappings
merge key by key (the including file wins), lists and scalars are replaced, and ``_inherited_: False``
inside a mapping replaces the base's mapping instead of merging. Every file and ``--opts`` value is
read within :mod:`paddleseg.utils.yaml_io`'s bounds (a regular file of at most 1 MB, 100 levels of
nesting, aliases expanding to at most 100,000 values). The whole config is validated when it is
loaded, before any data is read or model built; every error names the file that set the offending
key, the key path and the closest valid names.
"""
import copy
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from paddleseg.cvlibs import arguments, builder, manager
from paddleseg.errors import ConfigError
from paddleseg.utils import yaml_io
from paddleseg.utils.cli import MAX_TEST_SCALE, MIN_TEST_SCALE
from paddleseg.utils.regular_file import NotRegularFileError

# Top-level key → the registry its component(s) come from (None: plain values).
SECTIONS = {
    "batch_size": None,
    "iters": None,
    "model": manager.MODELS,
    "train_dataset": manager.DATASETS,
    "val_dataset": manager.DATASETS,
    "test_dataset": manager.DATASETS,
    "optimizer": manager.OPTIMIZERS,
    "lr_scheduler": manager.LR_SCHEDULERS,
    "loss": manager.LOSSES,
    "export": manager.TRANSFORMS,
    "test_config": None,
    "recompute": None,
}
TEST_CONFIG_KEYS = ("aug_eval", "scales", "flip_horizontal", "flip_vertical", "is_slide", "crop_size", "stride")
EXPORT_KEYS = ("transforms",)
LOSS_KEYS = ("types", "coef")

PathLike = Union[str, Path]


# ----------------------------------------------------------------------------------------------
# Loading: files, inheritance, overrides. Each key path remembers which file (or --opts) set it.
# ----------------------------------------------------------------------------------------------
def _read_yaml(path: Path, included_from: Optional[str]) -> Dict:
    """The mapping in ``path``, read with the bounds of :mod:`paddleseg.utils.yaml_io` (size, nesting,
    alias expansion); a FIFO, a device or a folder is refused before it is read."""
    where = f"{included_from}: _base_" if included_from else "config"
    try:
        data = yaml_io.load_file(path)
    except FileNotFoundError as e:
        raise ConfigError(f"{where}: file not found: {path}") from e
    except NotRegularFileError as e:
        raise ConfigError(f"{where}: {e}") from e
    except yaml_io.YAMLLimitError as e:
        raise ConfigError(f"{path}{yaml_io.position(e)}: refused: {yaml_io.problem(e)}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}{yaml_io.position(e)}: not valid YAML: {yaml_io.problem(e)}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(data).__name__}")
    return data


Origins = Dict[Tuple, str]  # key path -> the file (or command-line flag) that set its value


def _origin_of(origins: Origins, path: Tuple) -> Optional[str]:
    """Who set ``path``: the entry of its longest prefix in ``origins``."""
    for n in range(len(path), 0, -1):
        if path[:n] in origins:
            return origins[path[:n]]
    return None


def _merge(base: Dict, child: Dict, origins: Origins, source: Union[str, Origins], prefix: Tuple = ()) -> Dict:
    """``child`` over ``base``, as a new mapping. Records in ``origins`` who set each value ``child``
    sets: ``source`` is the file ``child`` was read from, or the origins of a merged ``_base_`` file."""
    if child.get("_inherited_", True) is False:
        base = {}
        _forget(origins, prefix, keep_prefix=True)
    merged = dict(base)
    for key, value in child.items():
        if key == "_inherited_":
            continue
        path = prefix + (key,)
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, origins, source, path)
        else:
            merged[key] = _strip_inherited(value)
            _record(origins, path, source)
    return merged


def _record(origins: Origins, path: Tuple, source: Union[str, Origins]) -> None:
    _forget(origins, path)
    if isinstance(source, str):
        origins[path] = source
        return
    here = _origin_of(source, path)
    if here is not None:
        origins[path] = here
    origins.update((k, v) for k, v in source.items() if len(k) > len(path) and k[: len(path)] == path)


def _forget(origins: Origins, prefix: Tuple, keep_prefix: bool = False) -> None:
    for key in [k for k in origins if k[: len(prefix)] == prefix and not (keep_prefix and k == prefix)]:
        del origins[key]


def _strip_inherited(value: Any) -> Any:
    """A copy of ``value`` without ``_inherited_`` keys (yaml_io has bounded its expanded size and depth)."""
    if isinstance(value, dict):
        return {k: _strip_inherited(v) for k, v in value.items() if k != "_inherited_"}
    if isinstance(value, list):
        return [_strip_inherited(v) for v in value]
    return value


def load_config(path: PathLike, origins: Optional[Origins] = None) -> Dict:
    """Read ``path`` with its ``_base_`` files merged in. ``origins`` collects key path → file.

    Each file is read and merged once however often it is named (a base shared by several files, or
    listed twice); its merged result is reused."""
    merged, found = _load(Path(path), (), {})
    if origins is not None:
        origins.update(found)
    return merged


def _load(path: Path, chain: Tuple[Path, ...], loaded: Dict[Path, Tuple[Dict, Origins]]) -> Tuple[Dict, Origins]:
    """``path`` merged over its bases, and who set each key; ``loaded`` holds the files merged so far
    (by resolved path), ``chain`` the files that include this one."""
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in chain + (resolved,))
        raise ConfigError(f"{chain[-1]}: _base_ cycle: {cycle}")
    if resolved in loaded:
        return loaded[resolved]
    data = _read_yaml(path, str(chain[-1]) if chain else None)
    bases = data.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a file path or a list of file paths, got {bases!r}")
    merged: Dict = {}
    origins: Origins = {}
    for base in _last_mentions([path.parent / b for b in bases]):
        base_dict, base_origins = _load(base, chain + (resolved,), loaded)
        merged = _merge(merged, base_dict, origins, base_origins)
    loaded[resolved] = _merge(merged, data, origins, str(path)), origins
    return loaded[resolved]


def _last_mentions(bases: List[Path]) -> List[Path]:
    """``bases`` without the earlier mentions of a file named twice: merging a file again overrides
    every key its earlier merge set, so only its last mention counts (and each is merged once)."""
    resolved = [b.resolve() for b in bases]
    last = {r: i for i, r in enumerate(resolved)}
    return [b for i, (b, r) in enumerate(zip(bases, resolved)) if last[r] == i]


def parse_opts(opts: Sequence[str]) -> List[Tuple[List[str], Any]]:
    """``["a.b=1", "c=[1, 2]"]`` → ``[(["a", "b"], 1), (["c"], [1, 2])]``; values parsed as YAML."""
    parsed = []
    for opt in opts or []:
        if "=" not in opt:
            raise ConfigError(f"--opts: '{opt}' is not of the form key.sub=value")
        key, text = opt.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"--opts: '{opt}' has an empty key part")
        try:
            value = yaml_io.load(text) if text.strip() else None
        except yaml_io.YAMLLimitError as e:
            raise ConfigError(f"--opts: the value of '{key}' is refused: {yaml_io.problem(e)}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"--opts: the value of '{key}' is not valid YAML: {yaml_io.problem(e)}") from e
        parsed.append((parts, value))
    return parsed


def apply_opt(dic: Dict, parts: List[str], value: Any, origins: Origins, source: str = "--opts") -> None:
    """Set ``dic[parts[0]][parts[1]]... = value``; a numeric part indexes a list. ``source`` (the
    command-line flag) is recorded as the origin of the key."""
    node: Any = dic
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, where)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--opts: '{where}' is a value ({node!r}), it has no key '{parts[i + 1]}'")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, ".".join(parts))] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--opts: '{'.'.join(parts[:-1])}' is a value ({node!r}), it has no key '{last}'")
    _forget(origins, tuple(parts))
    origins[tuple(parts)] = source


def _list_index(node: List, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--opts: '{where}' indexes a list of {len(node)} items with '{part}'")
    return int(part)


# ----------------------------------------------------------------------------------------------
# The Config object
# ----------------------------------------------------------------------------------------------
def _is_scale(value) -> bool:
    """A test-time scale factor, within the bounds ``--scales`` has (:data:`paddleseg.utils.cli.scale_factor`)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and MIN_TEST_SCALE <= value <= MAX_TEST_SCALE


class Config:
    """A validated training config; components are built on first access and cached.

    Args:
        path: the YAML file.
        opts: ``key.sub=value`` overrides, applied after inheritance (values parsed as YAML).
        learning_rate, batch_size, iters, recompute: command-line shortcuts for the same keys.
    """

    def __init__(self, path: PathLike, opts: Optional[Sequence[str]] = None,
                 learning_rate: Optional[float] = None, batch_size: Optional[int] = None,
                 iters: Optional[int] = None, recompute: Optional[bool] = None):
        self.path = Path(path)
        self._origins: Dict[Tuple, str] = {}
        dic = load_config(self.path, self._origins)
        overrides = [(parts, value, "--opts") for parts, value in parse_opts(opts)]
        if learning_rate is not None:
            overrides.append((["lr_scheduler", "learning_rate"], learning_rate, "--learning_rate"))
        if batch_size is not None:
            overrides.append((["batch_size"], batch_size, "--batch_size"))
        if iters is not None:
            overrides.append((["iters"], iters, "--iters"))
        if recompute is not None:
            overrides.append((["recompute"], recompute, "--recompute"))
        for parts, value, source in overrides:
            apply_opt(dic, parts, value, self._origins, source)
        self.dic = dic
        self._built: Dict[str, Any] = {}
        self.validate()

    # -- error locations ---------------------------------------------------------------------
    def origin(self, where: str) -> str:
        """'file: key.path' for a key path like ``model.backbone.scale`` or ``loss.types[0].weight``."""
        parts = tuple(p for p in where.replace("[", ".").replace("]", "").split(".") if p)
        for n in range(len(parts), 0, -1):
            src = self._origins.get(parts[:n])
            if src is not None:
                return f"{src}: {where}"
        return f"{self.path}: {where}"

    # -- validation --------------------------------------------------------------------------
    def validate(self) -> None:
        for key in self.dic:
            if key not in SECTIONS:
                raise ConfigError(f"{self.origin(key)}: unknown top-level key."
                                  f"{builder.did_you_mean(key, list(SECTIONS))} Valid keys: {', '.join(SECTIONS)}")
        for key in ("batch_size", "iters"):
            value = self.dic.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(f"{self.origin(key)}: must be a positive integer, got {value!r}")
        if self.dic.get("recompute") is not None and not isinstance(self.dic["recompute"], bool):
            raise ConfigError(f"{self.origin('recompute')}: must be true or false, got {self.dic['recompute']!r}")
        for key in ("model", "train_dataset", "val_dataset", "test_dataset", "optimizer", "lr_scheduler"):
            if self.dic.get(key) is not None:
                builder.check_component(self.dic[key], key, SECTIONS[key], self.origin)
        if self.dic.get("loss") is not None:
            self._check_loss()
        if self.dic.get("export") is not None:
            self._check_plain_mapping("export", EXPORT_KEYS)
            builder.check_nested(self.dic["export"].get("transforms"), "export.transforms", "transforms",
                                 self.origin)
        if self.dic.get("test_config") is not None:
            self._check_plain_mapping("test_config", TEST_CONFIG_KEYS)
            self._check_test_config()
        self._check_constructors()

    def _check_constructors(self) -> None:
        """Build, and throw away, the components that are cheap and pure to build (transforms, losses,
        optimizer settings, the schedule), so that what their constructors reject (a ``[0, 0]`` crop, a
        negative ``power``) fails now, before any data is read or file written. Models and datasets
        are built later, once (their constructors allocate weights or list files)."""
        for key in ("train_dataset", "val_dataset", "test_dataset", "export"):
            section = self.dic.get(key)
            transforms = section.get("transforms") if isinstance(section, dict) else None
            for i, item in enumerate(transforms if isinstance(transforms, list) else []):
                if builder.is_component(item):
                    builder.build_component(item, manager.TRANSFORMS, f"{key}.transforms[{i}]", self.origin)
        if self.dic.get("loss") is not None:
            for i, item in enumerate(self.dic["loss"]["types"]):
                builder.build_component(item, manager.LOSSES, f"loss.types[{i}]", self.origin)
        if self.dic.get("optimizer") is not None:
            builder.build_component(self.dic["optimizer"], manager.OPTIMIZERS, "optimizer", self.origin)
        if self.dic.get("lr_scheduler") is not None and self.dic.get("iters") is not None:
            builder.build_component(self.dic["lr_scheduler"], manager.LR_SCHEDULERS, "lr_scheduler", self.origin,
                                    iters=self.dic["iters"])

    def _check_plain_mapping(self, key: str, allowed: Sequence[str]) -> None:
        section = self.dic[key]
        if not isinstance(section, dict):
            raise ConfigError(f"{self.origin(key)}: expected a mapping, got {section!r}")
        for sub in section:
            if sub not in allowed:
                raise ConfigError(f"{self.origin(f'{key}.{sub}')}: unknown key."
                                  f"{builder.did_you_mean(sub, allowed)} Valid keys: {', '.join(allowed)}")

    def _check_test_config(self) -> None:
        """test_config's values, as val.py's and predict.py's options are checked: switches true or
        false, scales from 1/64 to 16 (as ``--scales``), window and stride sizes [width, height]."""
        section = self.dic["test_config"]
        for key, value in section.items():
            where = self.origin(f"test_config.{key}")
            if key in ("crop_size", "stride"):
                try:
                    arguments.size_pair("test_config", key, value)
                except ValueError as e:
                    raise ConfigError(f"{where}: {e}") from None
            elif key == "scales":
                values = value if isinstance(value, list) else [value]
                if not values or not all(_is_scale(v) for v in values):
                    raise ConfigError(f"{where}: must be a scale or a non-empty list of scales, each from 1/64 to "
                                      f"16, got {value!r}")
            elif not isinstance(value, bool):
                raise ConfigError(f"{where}: must be true or false, got {value!r}")

    def _check_loss(self) -> None:
        self._check_plain_mapping("loss", LOSS_KEYS)
        loss = self.dic["loss"]
        types, coef = loss.get("types"), loss.get("coef")
        if not isinstance(types, list) or not types:
            raise ConfigError(f"{self.origin('loss.types')}: must be a non-empty list of losses, got {types!r}")
        # PaddleSeg's convention: a single loss type serves every coefficient (i.e. every model output)
        if not isinstance(coef, list) or (len(coef) != len(types) and len(types) != 1):
            raise ConfigError(f"{self.origin('loss.coef')}: must be a list with one coefficient per entry of "
                              f"loss.types ({len(types)}), or any length when loss.types has one entry; "
                              f"got {coef!r}")
        for i, item in enumerate(types):
            builder.check_component(item, f"loss.types[{i}]", manager.LOSSES, self.origin)
        from paddleseg.losses import check_coefficients  # the loss package imports Paddle: only here

        check_coefficients(coef, self.origin("loss.coef"))

    # -- plain values --------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.dic.get("batch_size", 1)

    @property
    def iters(self) -> int:
        if "iters" not in self.dic:
            raise ConfigError(f"{self.path}: no 'iters' key (and no --iters given)")
        return self.dic["iters"]

    @property
    def recompute(self) -> bool:
        """Recompute activations in training's backward pass (the model's ``set_recompute``)."""
        return bool(self.dic.get("recompute", False))

    @property
    def palette(self) -> Optional[Tuple[Tuple[int, int, int], ...]]:
        """The class colours the config's data set gives (``palette`` of val_dataset, else of
        train_dataset), checked, or None; read without building the data set (predict.py and export.py
        need no data)."""
        for key in ("val_dataset", "train_dataset"):
            section = self.dic.get(key)
            if isinstance(section, dict) and section.get("palette") is not None:
                from paddleseg.datasets.dataset import check_palette

                count = section.get("num_classes", len(section["palette"]) if isinstance(section["palette"], list) else 0)
                try:
                    return check_palette(str(section.get("type", key)), section["palette"], count)
                except ValueError as e:
                    raise ConfigError(f"{self.origin(f'{key}.palette')}: {e}") from None
        return None

    @property
    def test_config(self) -> Dict:
        return copy.deepcopy(self.dic.get("test_config", {}))

    def _require(self, key: str) -> Any:
        if self.dic.get(key) is None:
            raise ConfigError(f"{self.path}: no '{key}' section")
        return self.dic[key]

    # -- built components, each built on first access and cached under its section's name ------
    def _build(self, key: str, **extra: Any) -> Any:
        """The component of section ``key``, built once; ``extra`` arguments come from code."""
        if key not in self._built:
            self._built[key] = builder.build_component(self._require(key), SECTIONS[key], key, self.origin, **extra)
        return self._built[key]

    @property
    def model(self):
        return self._build("model")

    @property
    def train_dataset(self):
        return self._build("train_dataset")

    @property
    def val_dataset(self):
        return self._build("val_dataset")

    @property
    def test_dataset(self):
        return self._build("test_dataset")

    @property
    def lr_scheduler(self):
        """The schedule, decaying over ``iters`` unless its config says otherwise."""
        return self._build("lr_scheduler", iters=self.iters)

    @property
    def optimizer(self):
        """The optimizer of :attr:`model`'s parameters, driven by :attr:`lr_scheduler`. The section's
        component holds the settings; calling it builds the Paddle optimizer."""
        if "optimizer" not in self._built:
            settings = builder.build_component(self._require("optimizer"), manager.OPTIMIZERS, "optimizer",
                                               self.origin)
            self._built["optimizer"] = settings(self.model.parameters(), learning_rate=self.lr_scheduler)
        return self._built["optimizer"]

    @property
    def loss(self) -> Dict[str, list]:
        """``{'types': [built losses], 'coef': [...]}``, one loss per coefficient (a single type is
        shared by all, PaddleSeg's convention)."""
        if "loss" not in self._built:
            section = self._require("loss")
            built = [builder.build_component(t, manager.LOSSES, f"loss.types[{i}]", self.origin)
                     for i, t in enumerate(section["types"])]
            coef = list(section["coef"])
            if len(built) == 1:
                built = built * len(coef)
            self._built["loss"] = {"types": built, "coef": coef}
        return self._built["loss"]

    def __repr__(self) -> str:
        return yaml.safe_dump(self.dic, sort_keys=False)
