"""Specification of the JSON Schema: generated from the parser's tables, and agreeing with the parser.

`jsonschema` is not a dependency, so `validate` below implements the keywords the schema uses (a test checks
the schema uses no others), with draft 2020-12 semantics: `pattern` searches, `integer` excludes booleans.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from boundary.errors import PolicyError
from boundary.policy.language import DENY_RULE_TABLE, NETWORK_TABLE, POLICY_TABLE, RULE_TABLE, SETTINGS_TABLE
from boundary.policy.load import parse_policy
from boundary.policy.nodes import Table
from boundary.policy.presets import PRESETS
from boundary.policy.schema import SCHEMA_DIALECT, SCHEMA_ID, policy_json_schema, policy_json_schema_text
from tests.support.tools import repo_root
from tests.unit.policy.test_language import LANGUAGE, NETWORK_VALID, VALID

POLICIES = sorted((repo_root() / "policies").glob("*.yaml"))
SCHEMA = policy_json_schema()

# Keywords `validate` implements, and annotations it ignores.
KEYWORDS = {
    "type", "const", "enum", "pattern", "minLength", "minimum", "maximum", "items", "minItems", "properties",
    "additionalProperties", "required", "minProperties", "propertyNames", "oneOf", "anyOf", "not",
}  # fmt: skip
ANNOTATIONS = {"$schema", "$id", "title", "description"}
TYPES = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def validate(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """The problems of `instance` against `schema` (empty: valid)."""
    problems: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[name](instance) for name in types):
            return [f"{where}: not of type {types}"]
    if "const" in schema and not same(instance, schema["const"]):
        problems.append(f"{where}: not {schema['const']!r}")
    if "enum" in schema and not any(same(instance, option) for option in schema["enum"]):
        problems.append(f"{where}: not one of {schema['enum']}")
    if isinstance(instance, str):
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            problems.append(f"{where}: {instance!r} does not match {schema['pattern']}")
        if len(instance) < schema.get("minLength", 0):
            problems.append(f"{where}: too short")
    if TYPES["integer"](instance) and not schema.get("minimum", instance) <= instance <= schema.get(
        "maximum", instance
    ):
        problems.append(f"{where}: {instance} out of range")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            problems.append(f"{where}: too few items")
        for index, item in enumerate(instance):
            problems += validate(item, schema.get("items", {}), f"{where}[{index}]")
    if isinstance(instance, dict):
        problems += validate_object(instance, schema, where)
    for option in ("oneOf", "anyOf"):
        if option in schema:
            passing = sum(not validate(instance, sub, where) for sub in schema[option])
            if passing == 0 or (option == "oneOf" and passing > 1):
                problems.append(f"{where}: {passing} of the {option} alternatives hold")
    if "not" in schema and not validate(instance, schema["not"], where):
        problems.append(f"{where}: matches what it must not")
    return problems


def validate_object(instance: dict[Any, Any], schema: dict[str, Any], where: str) -> list[str]:
    problems = [f"{where}: missing {name!r}" for name in schema.get("required", ()) if name not in instance]
    if len(instance) < schema.get("minProperties", 0):
        problems.append(f"{where}: too few properties")
    properties = schema.get("properties", {})
    for name, value in instance.items():
        if not isinstance(name, str):
            problems.append(f"{where}: key {name!r} is not a string")
            continue
        problems += validate(name, schema.get("propertyNames", {}), f"{where}.{name}(name)")
        if name in properties:
            problems += validate(value, properties[name], f"{where}.{name}")
        elif schema.get("additionalProperties") is False:
            problems.append(f"{where}: unknown property {name!r}")
        elif isinstance(schema.get("additionalProperties"), dict):
            problems += validate(value, schema["additionalProperties"], f"{where}.{name}")
    return problems


def same(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`."""
    return type(a) is type(b) and a == b


def subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield schema
    for key in ("items", "not", "propertyNames"):
        if isinstance(schema.get(key), dict):
            yield from subschemas(schema[key])
    if isinstance(schema.get("additionalProperties"), dict):
        yield from subschemas(schema["additionalProperties"])
    for sub in (*schema.get("properties", {}).values(), *schema.get("oneOf", ()), *schema.get("anyOf", ())):
        yield from subschemas(sub)


def load(text: str) -> Any:
    return yaml.safe_load(text)


# ---------------------------------------------------------------------------------------------------------------


def test_validator_knows_every_keyword_the_schema_uses() -> None:
    """The schema sticks to the keywords `validate` implements (plus annotations)."""
    used = {key for sub in subschemas(SCHEMA) for key in sub}
    assert used <= KEYWORDS | ANNOTATIONS, used - KEYWORDS - ANNOTATIONS


def test_schema_header() -> None:
    """Draft 2020-12, with an id, a title and a description."""
    assert SCHEMA["$schema"] == SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"] == SCHEMA_ID
    assert SCHEMA["title"] and SCHEMA["description"]


def table_schemas() -> list[tuple[Table, dict[str, Any]]]:
    top = SCHEMA["properties"]
    return [
        (POLICY_TABLE, SCHEMA),
        (RULE_TABLE, top["allow"]["items"]),
        (DENY_RULE_TABLE, top["deny"]["items"]),
        (SETTINGS_TABLE, top["defaults"]),
        (NETWORK_TABLE, top["network"]),
    ]


@pytest.mark.parametrize(
    ("table", "schema"), table_schemas(), ids=["top", "allow-rule", "deny-rule", "settings", "network"]
)
def test_schema_renders_the_parser_tables(table: Table, schema: dict[str, Any]) -> None:
    """Each table becomes a closed object whose properties are its keys, in order, with their descriptions."""
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == [key.name for key in table.keys]
    assert [p["description"] for p in schema["properties"].values()] == [key.description for key in table.keys]
    assert schema.get("required", []) == [key.name for key in table.keys if key.required]


def test_every_property_is_described() -> None:
    """Editors show a description for every key a policy can have."""
    for sub in subschemas(SCHEMA):
        for name, prop in sub.get("properties", {}).items():
            assert prop.get("description"), name


def test_presets_are_described_in_the_schema() -> None:
    """`include` offers each preset with its description."""
    options = SCHEMA["properties"]["include"]["items"]["anyOf"]
    described = {option["const"]: option["description"] for option in options if "const" in option}
    assert described == {f"preset:{name}": preset.description for name, preset in PRESETS.items()}


def test_schema_text_is_the_schema() -> None:
    """The text form is indented JSON of the same schema, ending in a newline."""
    text = policy_json_schema_text()
    assert text.endswith("}\n")
    assert json.loads(text) == SCHEMA


# ---------------------------------------------------------------------------------------------------------------
# The schema agrees with the parser


@pytest.mark.parametrize("path", POLICIES, ids=lambda path: path.name)
def test_example_policies_are_valid(path: Path) -> None:
    """Every example policy in policies/ validates against the generated schema."""
    assert validate(load(path.read_text(encoding="utf-8")), SCHEMA) == []


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid(name: str) -> None:
    """Every preset document validates too."""
    assert validate(load(PRESETS[name].text), SCHEMA) == []


@pytest.mark.parametrize("text", [param.values[0] for param in (*VALID, *LANGUAGE, *NETWORK_VALID)])
def test_what_the_parser_accepts_the_schema_accepts(text: Any) -> None:
    """The schema is a superset of the parser: each document of the parser's valid tables validates."""
    assert isinstance(text, str)
    parse_policy(text)
    assert validate(load(text.lstrip("\ufeff")), SCHEMA) == []


REJECTED = [
    pytest.param("version: 2\n", id="version"),
    pytest.param("version: true\n", id="version-bool"),
    pytest.param("version: 1\nalow: []\n", id="unknown-key"),
    pytest.param("allow: []\n", id="no-version"),
    pytest.param("version: 1\nallow: [{methods: [GET]}]\n", id="no-domain"),
    pytest.param("version: 1\nallow: [{domain: a.test, domains: [b.test]}]\n", id="domain-and-domains"),
    pytest.param("version: 1\nallow: [{domain: a.test, methods: [GETT]}]\n", id="unknown-method"),
    pytest.param("version: 1\nallow: [{domain: a.test, methods: []}]\n", id="no-methods"),
    pytest.param("version: 1\nallow: [{domain: a.test, ports: [0]}]\n", id="port-zero"),
    pytest.param("version: 1\nallow: [{domain: a.test, ports: [true]}]\n", id="port-bool"),
    pytest.param("version: 1\nallow: [{domain: a.test, paths: [x]}]\n", id="relative-path"),
    pytest.param("version: 1\nallow: [{domain: a.test, paths: ['/a?b']}]\n", id="path-query"),
    pytest.param("version: 1\nallow: [{domain: a.test, query: {}}]\n", id="empty-query"),
    pytest.param("version: 1\nallow: [{domain: a.test, query: {page: 1}}]\n", id="query-int"),
    pytest.param("version: 1\nallow: [{domain: 'a*.test'}]\n", id="wildcard-inside-label"),
    pytest.param("version: 1\nallow: [{domain: 127.1}]\n", id="domain-float"),
    pytest.param("version: 1\nallow: [{domain: a.test, raw_paths: 'yes'}]\n", id="flag-string"),
    pytest.param("version: 1\nallow: [{domain: a.test, id: 'a b'}]\n", id="bad-id"),
    pytest.param("version: 1\nallow: [{domain: a.test, id: 'preset:x'}]\n", id="reserved-id"),
    pytest.param("version: 1\ndeny: [{domain: a.test, raw_paths: true}]\n", id="deny-raw-paths"),
    pytest.param("version: 1\ndefaults: {port: [1]}\n", id="settings-unknown"),
    pytest.param("version: 1\ninclude: ['preset:pypy']\n", id="unknown-preset"),
    pytest.param("version: 1\ninclude: ['']\n", id="empty-include"),
    pytest.param("version: 1\nnetwork:\n", id="network-null"),
    pytest.param("version: 1\nnetwork: {allow_private: [10]}\n", id="network-range-int"),
    pytest.param("version: 1\nnetwork: {allow_private: [localhost]}\n", id="network-range-name"),
    pytest.param("version: 1\nnetwork: {allow_private: 10.0.0.0/8}\n", id="network-range-scalar"),
]


@pytest.mark.parametrize("text", REJECTED)
def test_mistakes_both_reject(text: str) -> None:
    """Mistakes an editor can see are refused by the schema and the parser alike."""
    assert validate(load(text), SCHEMA) != []
    with pytest.raises(PolicyError):
        parse_policy(text)
