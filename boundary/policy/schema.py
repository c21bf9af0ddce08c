"""JSON Schema (draft 2020-12) of the policy format, for editors and YAML language servers (pure).

Rendered from the very tables the parser walks (`boundary.policy.language.POLICY_TABLE` and the rule and settings
tables it refers to): every key, its value type and its description come from one definition, so the schema
cannot drift from what the parser accepts. JSON Schema cannot say everything the parser checks (normal-form
paths, IDNA, over-broad wildcards, unique ids, includes), so the schema accepts a superset: every policy the
parser accepts is valid against it, and most mistakes an editor can catch, it does.

To use it with the YAML language server, write the schema to a file (`policy_json_schema_text()`) and put
`# yaml-language-server: $schema=path/to/boundary-policy.schema.json` at the top of a policy.
"""

import json
from typing import Any, Final

from boundary.policy.language import POLICY_TABLE

__all__ = ["SCHEMA_DIALECT", "SCHEMA_ID", "policy_json_schema", "policy_json_schema_text"]

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID: Final = "urn:boundary:policy:1"


def policy_json_schema() -> dict[str, Any]:
    """The schema as a JSON-ready dict (a fresh one each call)."""
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "boundary policy",
        "description": (
            "An egress policy for `boundary run --policy FILE`: which hosts, ports, methods, paths and queries "
            "a jailed command may reach. Anything no allow rule matches, or a deny rule matches, is denied."
        ),
        **POLICY_TABLE.schema(),
    }


def policy_json_schema_text() -> str:
    """The schema as indented JSON text, ending in a newline."""
    return json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"
