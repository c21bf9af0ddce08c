"""YAML read as a node tree against typed key tables (pure).

The YAML is *composed*, not loaded: the parser walks PyYAML's node graph itself so every value keeps its line
number and duplicate keys (which a plain load silently collapses to the last one) are caught. A `Table` lists
the keys a mapping may have, each a `Key` with its `ValueType` (which parses a node and renders its JSON
Schema) and description; errors read `FILE:LINE: key.path: message`, quoting the value. The generic value
types live here; the policy's own are in `language`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, NoReturn, TypeGuard, cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from boundary.errors import PolicyError

# ----------------------------------------------------------------------------------------------------------
# The language as data: value types and key tables

STR_TAG: Final = "tag:yaml.org,2002:str"
INT_TAG: Final = "tag:yaml.org,2002:int"
FLOAT_TAG: Final = "tag:yaml.org,2002:float"
BOOL_TAG: Final = "tag:yaml.org,2002:bool"
NULL_TAG: Final = "tag:yaml.org,2002:null"
# YAML 1.1 also reads 0755, 0x1bb, 1_000 and 4:20 as integers; a port is written in plain decimal.
DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")
RULE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}")


class ValueType[T](ABC):
    """How one YAML value is checked and converted (`parse`), and the JSON Schema that describes it."""

    @abstractmethod
    def parse(self, fields: Fields, node: Node, at: str) -> T:
        """The value of `node` at key path `at`; `fields` holds the enclosing mapping and its document."""

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """JSON Schema (2020-12) of what `parse` accepts; a superset where JSON Schema cannot say more."""


@dataclass(frozen=True, slots=True)
class Key[T]:
    """One key of a mapping: its name, value type and the description editors and docs show."""

    name: str
    type: ValueType[T]
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """The keys a mapping may have. Unknown and duplicate keys are errors; keys are parsed in table order."""

    keys: tuple[Key[Any], ...]
    expected: str  # what an error calls a value that is no mapping: "a mapping with 'domain'"
    action: Literal["allow", "deny"] | None = None  # for rule tables
    exactly_one: tuple[str, ...] = ()  # keys of which exactly one must be given
    elsewhere: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # key -> why not here

    def read(self, doc: Document, node: Node, at: str) -> Fields:
        if not isinstance(node, MappingNode):
            doc.fail(node_line(node), at, f"expected {self.expected}, got {show_node(node)}")
        names = {key.name for key in self.keys}
        nodes: dict[str, Node] = {}
        first_seen: dict[str, int] = {}
        for key, value in node.value:
            if not is_str_node(key):
                doc.fail(node_line(key), at, f"expected a string key, got {show_node(key)}")
            name = key.value
            if name in first_seen:
                doc.fail(node_line(key), at, f"duplicate key {name!r} (first on line {first_seen[name]})")
            if name not in names:
                hint = f" ({self.elsewhere[name]})" if name in self.elsewhere else ""
                doc.fail(node_line(key), at, f"unknown key {name!r}{hint}")
            first_seen[name] = node_line(key)
            nodes[name] = value
        for required in self.keys:
            if required.required and required.name not in nodes:
                doc.fail(node_line(node), at, f"missing required key {required.name!r}")
        if self.exactly_one:
            given = sorted((first_seen[name], name) for name in self.exactly_one if name in nodes)
            if not given:
                doc.fail(node_line(node), at, "missing required key " + " or ".join(map(repr, self.exactly_one)))
            if len(given) > 1:
                doc.fail(given[1][0], at, "use only one of " + " and ".join(repr(name) for _, name in given))
        fields = Fields(doc, nodes, at, node_line(node), self.action)
        for key in self.keys:
            fields.get(key)
        return fields

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {key.name: {"description": key.description, **key.type.schema()} for key in self.keys},
            "additionalProperties": False,
        }
        required = [key.name for key in self.keys if key.required]
        if required:
            schema["required"] = required
        if self.exactly_one:
            schema["oneOf"] = [{"required": [name]} for name in self.exactly_one]
        return schema


class Document:
    """One document being parsed: its source name and how its errors read."""

    __slots__ = ("included", "preset", "rules_seen", "source")

    def __init__(self, source: str, *, preset: bool, included: bool) -> None:
        self.source = source
        self.preset = preset
        self.included = included
        self.rules_seen = 0

    def fail(self, line: int, at: str, message: str) -> NoReturn:
        where = f"{self.source}:{line}: {at}: " if at else f"{self.source}:{line}: "
        raise PolicyError(where + message)

    def default_id(self, line: int) -> str:
        """FILE:LINE of the rule; in a preset, `preset:NAME/N` for its N-th rule."""
        self.rules_seen += 1
        return f"{self.source}/{self.rules_seen}" if self.preset else f"{self.source}:{line}"

    def compose(self, text: str) -> Node | None:
        return compose_yaml(text, lambda line, message: self.fail(line, "", message))


class Fields:
    """The keys of one mapping node, each parsed on first use: a key's type may consult its siblings."""

    __slots__ = ("_nodes", "_values", "action", "at", "doc", "line")

    def __init__(
        self, doc: Document, nodes: dict[str, Node], at: str, line: int, action: Literal["allow", "deny"] | None
    ) -> None:
        self.doc = doc
        self.at = at
        self.line = line
        self.action = action
        self._nodes = nodes
        self._values: dict[str, object] = {}

    def get[T](self, key: Key[T]) -> T | None:
        if key.name in self._values:
            return cast("T", self._values[key.name])
        node = self._nodes.get(key.name)
        if node is None:
            return None
        value = key.type.parse(self, node, f"{self.at}.{key.name}" if self.at else key.name)
        self._values[key.name] = value
        return value

    def line_of(self, name: str) -> int:
        return node_line(self._nodes[name])


# YAML nodes, shared with `policytool` (cases files)


def compose_yaml(text: str, fail: Callable[[int, str], NoReturn]) -> Node | None:
    """The node tree of `text` (None if it holds no document); invalid YAML is `fail(line, message)`."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context
        if e.problem and e.context:
            problem = f"{e.problem} ({e.context})"
        fail(mark.line + 1 if mark else 1, f"invalid YAML: {problem}")
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        fail(line, f"invalid YAML: unacceptable character #x{e.character:04x}: {e.reason}")
    except RecursionError:  # the composer recurses once per nesting level
        fail(1, "invalid YAML: nested too deeply")


def node_line(node: Node) -> int:
    """The 1-based line where `node` starts."""
    return int(node.start_mark.line) + 1


def show_node(node: Node) -> str:
    """The value as the author wrote it: strings quoted, other scalars bare, collections by kind."""
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    if node.tag == STR_TAG:
        return repr(node.value)
    if node.tag == NULL_TAG:
        return "null"
    return str(node.value)


def is_str_node(node: Node) -> TypeGuard[ScalarNode]:
    """A string scalar, quoted or not (YAML 1.1 reads `yes`, `1` and `~` as other types)."""
    return isinstance(node, ScalarNode) and node.tag == STR_TAG


def is_null_node(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


class VersionType(ValueType[int]):
    def parse(self, fields: Fields, node: Node, at: str) -> int:
        if not (isinstance(node, ScalarNode) and node.tag == INT_TAG and node.value == "1"):
            fields.doc.fail(node_line(node), at, f"unsupported version {show_node(node)} (expected 1)")
        return 1

    def schema(self) -> dict[str, Any]:
        return {"const": 1}


class FlagType(ValueType[bool]):
    def parse(self, fields: Fields, node: Node, at: str) -> bool:
        if not (isinstance(node, ScalarNode) and node.tag == BOOL_TAG):
            fields.doc.fail(node_line(node), at, f"expected true or false, got {show_node(node)}")
        return str(node.value).lower() in ("true", "yes", "on")

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class CommentType(ValueType[str]):
    def parse(self, fields: Fields, node: Node, at: str) -> str:
        if not is_str_node(node):
            fields.doc.fail(node_line(node), at, f"expected a comment (a string), got {show_node(node)}")
        return str(node.value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


@dataclass(frozen=True, slots=True)
class ListType[T](ValueType[tuple[T, ...]]):
    item: ValueType[T]
    what: str  # "methods": "expected a list of methods"
    omitted: str | None = None  # why an empty list is refused ("omit 'x' to ..."); None: empty is fine
    nullable: bool = False  # whether `key:` with no value means the empty list

    def parse(self, fields: Fields, node: Node, at: str) -> tuple[T, ...]:
        if self.nullable and is_null_node(node):
            return ()
        if not isinstance(node, SequenceNode):
            fields.doc.fail(node_line(node), at, f"expected a list of {self.what}, got {show_node(node)}")
        if not node.value and self.omitted:
            fields.doc.fail(node_line(node), at, f"empty list ({self.omitted})")
        return tuple(self.item.parse(fields, item, at) for item in node.value)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": ["array", "null"] if self.nullable else "array", "items": self.item.schema()}
        if self.omitted:
            schema["minItems"] = 1
        return schema


_SIZE: Final = re.compile(r"(0|[1-9][0-9]*) ?(KiB|MiB)?")
_SIZE_UNITS: Final = {None: 1, "KiB": 1024, "MiB": 1024 * 1024}


@dataclass(frozen=True, slots=True)
class BoundedIntType(ValueType[int]):
    """A whole number in [low, high], in plain decimal; `sizes`: also a string with a KiB or MiB suffix."""

    what: str  # "a size in bytes"
    low: int
    high: int
    sizes: bool = False

    def parse(self, fields: Fields, node: Node, at: str) -> int:
        match = None
        if isinstance(node, ScalarNode) and (node.tag == INT_TAG or (self.sizes and node.tag == STR_TAG)):
            match = _SIZE.fullmatch(node.value)
        if match is None:
            example = "65536 or 64KiB" if self.sizes else str(self.low)
            fields.doc.fail(node_line(node), at, f"expected {self.what} such as {example}, got {show_node(node)}")
        value = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
        if not self.low <= value <= self.high:
            fields.doc.fail(node_line(node), at, f"{show_node(node)} out of range ({self.low}-{self.high})")
        return value

    def schema(self) -> dict[str, Any]:
        number = {"type": "integer", "minimum": self.low, "maximum": self.high}
        if not self.sizes:
            return number
        return {"anyOf": [number, {"type": "string", "pattern": f"^{_SIZE.pattern}$"}]}
