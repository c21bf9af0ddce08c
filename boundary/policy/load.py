"""Policy files: strict YAML text -> a frozen, validated `Policy` (pure; only `load_policy` touches files).

The first problem raises `PolicyError` in the form `FILE:LINE: key.path: message`, quoting the offending
value; a problem inside an included file names that file and line. Includes are resolved by a loader callback
(`load_policy` passes one that reads files relative to the including file; `parse_policy` alone stays pure)
and presets (`include: [preset:NAME]`) come from `presets`. Included rules come before the including file's
own rules; each document is included once, and a document that includes itself, directly or not, is an error
naming the cycle.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from boundary.errors import BoundaryError, PolicyError
from boundary.policy.language import (
    ALLOW_KEY,
    DENY_KEY,
    INCLUDE_KEY,
    LIMITS_KEY,
    NETWORK_KEY,
    POLICY_TABLE,
    Include,
    RuleEntry,
)
from boundary.policy.model import IPNetwork, Limits, Policy, Rule
from boundary.policy.nodes import Document, is_null_node
from boundary.policy.presets import PRESET_PREFIX, PRESETS

_MAX_INCLUDE_DEPTH: Final = 16

# load(reference as written, source of the including document) -> (source of the included document, its text).
# The returned source names the document in errors and rule sources, and identifies it for include-once and
# cycle detection. May raise OSError or UnicodeDecodeError.
type IncludeLoader = Callable[[str, str], tuple[str, str]]
# ----------------------------------------------------------------------------------------------------------
# Parsing


def parse_policy(text: str, source: str = "<string>", load: IncludeLoader | None = None) -> Policy:
    """Parse policy YAML; raises PolicyError `SOURCE:LINE: key.path: message` on the first problem.

    `load` resolves file includes (see `IncludeLoader`); without it only presets can be included. Pure as
    long as `load` is.
    """
    return _Assembler(load).policy(text, source, source)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and parse a policy file and the files it includes (relative to the including file's directory);
    an unreadable file is a PolicyError too."""
    name = os.fspath(path)
    text = read_text(name, "policy", PolicyError)
    return _Assembler(_read_include).policy(text, name, os.path.normpath(name))


def read_text(name: str, what: str, error: type[BoundaryError]) -> str:
    """The text of the UTF-8 file `name` (a BOM dropped); unreadable, it raises `error`
    `NAME: cannot read WHAT: why`."""
    try:
        return _read_utf8(name)
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{name}: cannot read {what}: {_read_problem(e)}") from e


def _read_utf8(name: str) -> str:
    with open(name, encoding="utf-8-sig") as file:
        return file.read()


def _read_problem(e: OSError | UnicodeDecodeError) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text (byte {e.start})"
    return str(e.strerror or e)


def _read_include(reference: str, including: str) -> tuple[str, str]:
    name = os.path.normpath(os.path.join(os.path.dirname(including), reference))
    return name, _read_utf8(name)


class _Assembler:
    """Collects the rules of a document and, depth first, of everything it includes."""

    def __init__(self, load: IncludeLoader | None) -> None:
        self.load = load
        self.allow: list[Rule] = []
        self.deny: list[Rule] = []
        self.ids: dict[str, Rule] = {}
        self.stack: list[tuple[str, str]] = []  # (identity, source) of the documents being parsed
        self.done: set[str] = set()
        self.includes: list[str] = []
        self.allow_private: dict[IPNetwork, None] = {}
        self.limits = Limits()

    def policy(self, text: str, source: str, identity: str) -> Policy:
        self.document(text, source, identity, preset=False)
        return Policy(
            tuple(self.allow),
            source,
            tuple(self.deny),
            tuple(self.includes),
            tuple(self.allow_private),
            self.limits,
        )

    def document(self, text: str, source: str, identity: str, *, preset: bool) -> None:
        doc = Document(source, preset=preset, included=bool(self.stack))
        root = doc.compose(text)
        if root is None or is_null_node(root):
            doc.fail(1, "", "empty policy (expected 'version: 1')")
        self.stack.append((identity, source))
        fields = POLICY_TABLE.read(doc, root, "")
        for include in fields.get(INCLUDE_KEY) or ():
            self.include(doc, include)
        for entry in (*(fields.get(ALLOW_KEY) or ()), *(fields.get(DENY_KEY) or ())):
            self.add(entry)
        network = fields.get(NETWORK_KEY)
        self.allow_private.update(dict.fromkeys(network.allow_private if network else ()))
        self.limits = fields.get(LIMITS_KEY) or self.limits
        self.stack.pop()
        self.done.add(identity)

    def include(self, doc: Document, include: Include) -> None:
        reference = include.reference
        if reference.startswith(PRESET_PREFIX):
            preset = PRESETS[reference.removeprefix(PRESET_PREFIX)]
            source, text, is_preset = preset.source, preset.text, True
        else:
            if self.load is None:
                doc.fail(include.line, include.at, f"cannot include {reference!r}: no file loader (use load_policy)")
            try:
                source, text = self.load(reference, doc.source)
            except (OSError, UnicodeDecodeError) as e:
                doc.fail(include.line, include.at, f"cannot read {reference!r}: {_read_problem(e)}")
            is_preset = False
        identities = [identity for identity, _ in self.stack]
        if source in identities:
            cycle = [name for _, name in self.stack[identities.index(source) :]]
            doc.fail(include.line, include.at, "cycle: " + " -> ".join([*cycle, source]))
        if source in self.done:
            return  # included once already (a diamond, not a cycle)
        if len(self.stack) >= _MAX_INCLUDE_DEPTH:
            doc.fail(include.line, include.at, f"includes nested more than {_MAX_INCLUDE_DEPTH} deep")
        self.includes.append(source)
        self.document(text, source, source, preset=is_preset)

    def add(self, entry: RuleEntry) -> None:
        rule = entry.rule
        other = self.ids.get(rule.id)
        if other is not None:
            at = f"{entry.at}.id" if entry.explicit_id else entry.at
            entry.doc.fail(entry.line, at, f"duplicate id {rule.id!r} (also the id of the rule at {other.source})")
        self.ids[rule.id] = rule
        (self.allow if rule.action == "allow" else self.deny).append(rule)
