"""Reading YAML a user or a config named, with bounds on what the text may turn into.

    data = yaml_io.load_file("configs/quickstart/espnetv2_synthetic.yml")  # a dict, or YAMLError
    value = yaml_io.load("[1, 2]")                                          # the same, for a string

``yaml.safe_load`` runs no code, but a small file can still describe a huge structure. Aliases
(``*name``) refer to an anchored collection without copying it, so a 1 KB file of nine lists of nine
aliases to the previous list (the "billion laughs") loads cheaply, then expands to 9**9 values in the
first function that walks it as a tree (merging ``_base_`` files, ``numpy.asarray``, a deep copy): GBs.
An alias may also refer to the collection that contains it (a recursive structure), and a list nested
20,000 levels deep exhausts Python's recursion limit while it is parsed.

:class:`BoundedLoader` refuses these before anything is built: it counts the nesting while it
composes the node graph (before the constructor, or the composer itself, recurses too deep), then
computes, once per node, how many nodes and levels the graph would have with every alias expanded,
and refuses it when that passes :data:`MAX_DEPTH` levels or :data:`MAX_NODES` nodes (or twice the
nodes the text itself holds, for a large file with a few aliases). Text without aliases is bounded by
its size: :func:`load_file` reads at most :data:`MAX_BYTES`, and only from a regular file (a FIFO or
``/dev/zero`` is refused, see :mod:`paddleseg.utils.regular_file`). A refusal is a
:class:`YAMLLimitError`, a ``yaml.YAMLError`` with the line and column of the node concerned.

Standard library, PyYAML and regular_file (standard library) only: ``tools/infer.py`` reads an export's
deploy.yaml with it, and imports no Paddle.
"""
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from paddleseg.utils.regular_file import read_text

MAX_BYTES = 1 << 20  # configs and deploy.yaml are a few KB
MAX_DEPTH = 100  # levels of nesting (ours have fewer than 10)
MAX_NODES = 100_000  # nodes once every alias is expanded, when aliases are used


class YAMLLimitError(yaml.MarkedYAMLError):
    """Valid YAML refused for what it would expand to: too deep, too many nodes, or recursive."""

    def __init__(self, problem: str, mark: yaml.Mark):
        super().__init__(problem=problem, problem_mark=mark)


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses, before constructing anything, a document nested deeper than
    :data:`MAX_DEPTH` or whose aliases would expand it beyond :data:`MAX_NODES` nodes."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0  # of the node being composed
        self._composed = 0  # nodes in the text (an alias is not one)
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise YAMLLimitError(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
        self._composed += 1
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        root = super().compose_document()
        if self._aliases:
            _check_expansion(root, max(MAX_NODES, 2 * self._composed))
        self._composed = self._aliases = 0
        return root


def _check_expansion(root: Node, max_nodes: int) -> None:
    """YAMLLimitError if ``root`` with its aliases expanded is recursive, deeper than MAX_DEPTH or has
    more than ``max_nodes`` nodes. Each node is measured once (aliases share their node), so this
    costs as much as the text, not as the expansion."""
    measured: Dict[int, Tuple[int, int]] = {}  # id(node) -> (nodes, levels) of its expansion
    open_nodes = set()  # ids of the nodes on the path being measured: meeting one again is a cycle

    def measure(node: Node, level: int) -> Tuple[int, int]:
        key = id(node)
        if key in measured:
            return measured[key]
        if key in open_nodes:
            raise YAMLLimitError("an alias refers to the collection that contains it (a recursive structure)",
                                 node.start_mark)
        if level > MAX_DEPTH:
            raise YAMLLimitError(f"with its aliases expanded, nested more than {MAX_DEPTH} levels deep",
                                 node.start_mark)
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        open_nodes.add(key)
        nodes, levels = 1, 0
        for child in children:
            child_nodes, child_levels = measure(child, level + 1)
            nodes += child_nodes
            levels = max(levels, child_levels)
            if nodes > max_nodes:
                raise YAMLLimitError(f"its aliases would expand to more than {max_nodes} values (an alias "
                                     f"bomb?); refused before expanding them", node.start_mark)
        open_nodes.discard(key)
        measured[key] = nodes, levels + 1
        if levels + 1 > MAX_DEPTH:
            raise YAMLLimitError(f"with its aliases expanded, nested more than {MAX_DEPTH} levels deep",
                                 node.start_mark)
        return measured[key]

    measure(root, 1)


def load(text: str) -> Any:
    """``yaml.safe_load(text)`` within the bounds (YAMLLimitError beyond them)."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_file(path: Union[str, Path], max_bytes: int = MAX_BYTES) -> Any:
    """The YAML document in the regular file ``path`` of at most ``max_bytes`` (UTF-8).

    Raises ``FileNotFoundError`` and the other ``OSError``s of opening it,
    :class:`~paddleseg.utils.regular_file.NotRegularFileError` (an ``OSError``) for a FIFO, a device,
    a folder or a larger file, ``UnicodeDecodeError``, and ``yaml.YAMLError`` (YAMLLimitError
    included)."""
    return load(read_text(path, max_bytes))


def position(error: yaml.YAMLError) -> str:
    """':line:column' (1-based) of a YAML error, or '' when PyYAML gives no position."""
    mark = getattr(error, "problem_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def problem(error: yaml.YAMLError) -> str:
    """PyYAML's explanation on one line, without its multi-line excerpt of the file."""
    parts = [getattr(error, "context", None), getattr(error, "problem", None)]
    text = ", ".join(p for p in parts if p) or str(error)
    return " ".join(text.split())
