"""Policy lint: rules that can never matter, found without running a single request (pure).

Theory of operation. Everything rests on `covers(a, b)`: every request rule `b` matches, rule `a` matches
too. It is conservative, answering True only when that is certain from the patterns alone: host patterns by
their suffixes, ports and methods as sets, path patterns segment by segment (equal segments, a segment of
only stars, or a star pattern that matches the other's literal segment; a trailing `/**` covers everything
below its prefix), query value patterns the same way. Anything cleverer (two globs whose languages happen to
nest in another way) is left alone, so a finding is never a false alarm, and some redundant rules go
unreported.

From it: an allow rule covered by an earlier allow rule never decides a request (shadowed; both covering
each other: duplicates); an allow rule covered by a deny rule never allows anything (dead); deny rules that
cover each other are duplicates. Candidate pairs come from an index keyed by domain pattern, walked by the
label suffixes of a rule's first domain, so a policy of 10,000 rules is linted without comparing every pair.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from boundary.policy.model import Policy, Rule
from boundary.policy.patterns import broad_reason, domain_pattern_parts, star_matches

__all__ = ["Finding", "covers", "lint"]

_SPAN: Final = "**"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Literal["warning"]
    source: str  # FILE:LINE of the rule the finding is about
    message: str
    rule_id: str


def lint(policy: Policy) -> list[Finding]:
    """Findings about `policy`, in the order of the rules they are about (allow rules, then deny rules)."""
    allow_index = _Index(policy.rules)
    deny_index = _Index(policy.deny)
    findings: list[Finding] = []
    for position, rule in enumerate(policy.rules):
        for earlier in allow_index.candidates(rule, before=position):
            if covers(earlier, rule):
                if covers(rule, earlier):
                    findings.append(_finding(rule, f"duplicates {_name(earlier)}; one of them can go"))
                else:
                    message = f"never decides a request: {_name(earlier)} comes first and matches all it matches"
                    findings.append(_finding(rule, message))
                break
        for denier in deny_index.candidates(rule):
            if covers(denier, rule):
                message = f"never allows anything: deny {_name(denier)} denies all it allows"
                findings.append(_finding(rule, message))
                break
        if rule.allow_broad and not any(broad_reason(pattern) for pattern in rule.domains):
            findings.append(_finding(rule, "'allow_broad: true' has no effect: no domain of this rule is over-broad"))
    for position, rule in enumerate(policy.deny):
        for earlier in deny_index.candidates(rule, before=position):
            if covers(earlier, rule) and covers(rule, earlier):
                findings.append(_finding(rule, f"duplicates deny {_name(earlier)}; one of them can go"))
                break
    return findings


def _finding(rule: Rule, message: str) -> Finding:
    return Finding("warning", rule.source, message, rule.id)


def _name(rule: Rule) -> str:
    return f"rule {rule.id}" if rule.id == rule.source else f"rule {rule.id} ({rule.source})"


# ----------------------------------------------------------------------------------------------------------
# Coverage


def covers(a: Rule, b: Rule) -> bool:
    """Whether every request `b` matches is certainly matched by `a` (False when unsure).

    "Matches" is in the sense of the rules' own actions: an allow rule's query is strict, a deny rule's is
    loose, and a deny rule takes any ambiguous target as matching its paths.
    """
    return (
        all(any(_domain_covers(pa, pb) for pa in a.domains) for pb in b.domains)
        and (a.ports is None or (b.ports is not None and b.ports <= a.ports))
        and (a.methods is None or (b.methods is not None and b.methods <= a.methods))
        and _paths_cover(a, b)
        and _query_covers(a, b)
    )


def _domain_covers(a: str, b: str) -> bool:
    kind_a, suffix_a = domain_pattern_parts(a)
    kind_b, suffix_b = domain_pattern_parts(b)
    if kind_a == "exact":
        return kind_b == "exact" and a == b
    if not suffix_a:
        return True  # every host
    strictly_under = suffix_b.endswith("." + suffix_a)
    if kind_b == "sub":
        return strictly_under or suffix_b == suffix_a
    # b names suffix_b itself (an exact host, or the apex of '**.'): only an apex pattern of a names its suffix.
    return strictly_under or (kind_a == "apex" and suffix_b == suffix_a)


def _paths_cover(a: Rule, b: Rule) -> bool:
    # b may also match ambiguous targets as sent. A deny rule takes every such target as matching its paths;
    # an allow rule surely matches them only if it is raw too, with the same or no patterns.
    if b.raw_paths and a.action == "allow" and not (a.raw_paths and _same_or_fewer_limits(a.paths, b.paths)):
        return False
    # Only a rule without paths lets a non-HTTP stream through, so `/**` does not cover "no paths" for an allow.
    if a.action == "allow" and a.paths is not None and b.paths is None:
        return False
    if a.paths is None:
        return True
    return all(any(_glob_covers(pa, pb) for pa in a.paths) for pb in b.paths or ("/**",))


def _same_or_fewer_limits(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> bool:
    return a is None or (b is not None and set(b) <= set(a))


def _glob_covers(a: str, b: str) -> bool:
    if a == b:
        return True
    segments_a, segments_b = a.split("/"), b.split("/")
    if _SPAN not in segments_a:
        return (
            _SPAN not in segments_b
            and len(segments_a) == len(segments_b)
            and all(map(_segment_covers, segments_a, segments_b))
        )
    if segments_a.index(_SPAN) != len(segments_a) - 1:
        return False  # a '**' before the end: only equality is certain
    # "PREFIX/**" matches PREFIX and everything below it: b's first segments must lie within PREFIX.
    prefix = segments_a[:-1]
    head = segments_b[: len(prefix)]
    return len(head) == len(prefix) and _SPAN not in head and all(map(_segment_covers, prefix, head))


def _segment_covers(a: str, b: str) -> bool:
    """Whether glob segment `a` matches every segment glob segment `b` matches (both without a whole '**')."""
    if a == b or a.strip("*") == "":
        return True
    return "*" not in b and star_matches(a.split("*"), b)


def _query_covers(a: Rule, b: Rule) -> bool:
    # An allow rule (strict) matches when every value of each named parameter matches; b strict or loose
    # matching implies a's condition when a's names are among b's and b's value patterns lie within a's.
    if a.query is None:
        return True
    if b.query is None:
        return False
    patterns_b = dict(b.query)
    return all(name in patterns_b and _segment_covers(glob, patterns_b[name]) for name, glob in a.query)


# ----------------------------------------------------------------------------------------------------------
# Candidate pairs


class _Index:
    """Rules by domain pattern (kind, suffix), to find those that may cover a rule without a scan."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules: dict[tuple[str, str], list[tuple[int, Rule]]] = {}
        for position, rule in enumerate(rules):
            for pattern in dict.fromkeys(rule.domains):
                self._rules.setdefault(domain_pattern_parts(pattern), []).append((position, rule))

    def candidates(self, rule: Rule, before: int | None = None) -> Iterator[Rule]:
        """Rules that may cover `rule` (each once, in policy order), optionally only those before a position."""
        kind, suffix = domain_pattern_parts(rule.domain)
        keys: list[tuple[str, str]] = [(kind, suffix)] if kind == "exact" else []
        for covering in _suffixes(suffix):
            keys += [("sub", covering), ("apex", covering)]
        found = {
            position: other
            for key in keys
            for position, other in self._rules.get(key, ())
            if (before is None or position < before) and other is not rule
        }
        for position in sorted(found):
            yield found[position]


def _suffixes(name: str) -> list[str]:
    """`a.b.c` -> [a.b.c, b.c, c, ""]: the name and every suffix a pattern covering it may have."""
    suffixes = [name]
    while name:
        name = name.partition(".")[2]
        suffixes.append(name)
    return suffixes
