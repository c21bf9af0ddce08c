"""Specification of the built-in presets: each parses, says what it allows, and allows exactly that."""

import pytest

from boundary.policy.lint import lint
from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher, Request
from boundary.policy.model import Policy
from boundary.policy.patterns import broad_reason
from boundary.policy.presets import PRESET_PREFIX, PRESETS, Preset
from boundary.reasons import Reason
from tests.support.tools import repo_root

DOCS = repo_root() / "docs" / "policy.md"


def preset_policy(*names: str) -> Policy:
    return parse_policy("version: 1\ninclude: [" + ", ".join(PRESET_PREFIX + name for name in names) + "]\n")


def test_the_presets() -> None:
    """The presets users ask for, by name."""
    assert set(PRESETS) == {"pypi", "npm", "github-readonly", "anthropic", "openai"}


@pytest.mark.parametrize("preset", PRESETS.values(), ids=lambda preset: preset.name)
def test_each_preset_parses_and_describes_itself(preset: Preset) -> None:
    """A preset is a valid policy document named `preset:NAME`, with a description of what it allows."""
    policy = parse_policy(preset.text, preset.source)
    assert policy.rules
    assert preset.source == f"preset:{preset.name}"
    assert len(preset.description) > 40
    assert all(rule.source.startswith(f"preset:{preset.name}:") for rule in (*policy.rules, *policy.deny))


@pytest.mark.parametrize("preset", PRESETS.values(), ids=lambda preset: preset.name)
def test_presets_are_narrow_and_clean(preset: Preset) -> None:
    """No preset needs `allow_broad`, every allow rule names its ports, and lint finds nothing."""
    policy = preset_policy(preset.name)
    assert not any(broad_reason(pattern) for rule in policy.rules for pattern in rule.domains)
    assert all(rule.comment for rule in (*policy.rules, *policy.deny))
    assert "ports:" in preset.text
    assert lint(policy) == []


def test_presets_ignore_the_including_files_defaults() -> None:
    """A preset means the same wherever it is included: the includer's `defaults` do not reach it."""
    plain = preset_policy(*PRESETS)
    with_defaults = parse_policy(
        "version: 1\ndefaults: {ports: [8080]}\ninclude: [" + ", ".join(f"preset:{n}" for n in PRESETS) + "]\n"
    )
    assert plain.rules == with_defaults.rules
    assert plain.deny == with_defaults.deny


def test_all_presets_together() -> None:
    """All presets can be included in one policy: their ids are distinct."""
    policy = preset_policy(*PRESETS)
    ids = [rule.id for rule in (*policy.rules, *policy.deny)]
    assert len(ids) == len(set(ids))
    assert lint(policy) == []


def https(host: str, path: str = "/", method: str = "GET", port: int = 443) -> Request:
    return Request("https", host, port, method, path)


BEHAVIOUR = [
    # pypi
    ("pypi", https("pypi.org", "/simple/requests/"), Reason.ALLOWED, "preset:pypi/1"),
    ("pypi", https("pypi.org", "/pypi/requests/json", "HEAD"), Reason.ALLOWED, "preset:pypi/1"),
    ("pypi", https("files.pythonhosted.org", "/packages/ab/cd/x.whl"), Reason.ALLOWED, "preset:pypi/2"),
    ("pypi", https("upload.pypi.org", "/legacy/", "POST"), Reason.NO_MATCHING_RULE, None),
    ("pypi", https("pypi.org", "/simple/", "POST"), Reason.METHOD_NOT_ALLOWED, None),
    ("pypi", https("pypi.org", "/simple/", port=80), Reason.PORT_NOT_ALLOWED, None),
    # npm
    ("npm", https("registry.npmjs.org", "/left-pad"), Reason.ALLOWED, "preset:npm/1"),
    ("npm", https("registry.npmjs.org", "/left-pad/-/left-pad-1.3.0.tgz"), Reason.ALLOWED, "preset:npm/1"),
    ("npm", https("registry.npmjs.org", "/left-pad", "PUT"), Reason.METHOD_NOT_ALLOWED, None),
    ("npm", https("registry.npmjs.org", "/-/npm/v1/security/advisories/bulk", "POST"), Reason.METHOD_NOT_ALLOWED, None),
    # npm: scoped packages' metadata is requested with the '/' encoded, matched raw; nothing else encoded is
    ("npm", https("registry.npmjs.org", "/@types%2fnode"), Reason.ALLOWED, "preset:npm/2"),
    ("npm", https("registry.npmjs.org", "/@types%2Fnode", "HEAD"), Reason.ALLOWED, "preset:npm/2"),
    ("npm", https("registry.npmjs.org", "/@types/node/-/node-22.0.0.tgz"), Reason.ALLOWED, "preset:npm/1"),
    ("npm", https("registry.npmjs.org", "/@a%2f..%2fb"), Reason.AMBIGUOUS_PATH, None),
    ("npm", https("registry.npmjs.org", "/@a%2fb%2fc"), Reason.AMBIGUOUS_PATH, None),
    ("npm", https("registry.npmjs.org", "/a%2fb"), Reason.AMBIGUOUS_PATH, None),
    ("npm", https("registry.npmjs.org", "/@types%2fnode", "PUT"), Reason.AMBIGUOUS_PATH, None),  # no raw rule for PUT
    # github-readonly: clone and fetch
    (
        "github-readonly",
        https("github.com", "/o/r.git/info/refs?service=git-upload-pack"),
        Reason.ALLOWED,
        "preset:github-readonly/1",
    ),
    (
        "github-readonly",
        https("github.com", "/o/r/info/refs?service=git-upload-pack"),
        Reason.ALLOWED,
        "preset:github-readonly/1",
    ),
    (
        "github-readonly",
        https("github.com", "/o/r.git/git-upload-pack", "POST"),
        Reason.ALLOWED,
        "preset:github-readonly/2",
    ),
    ("github-readonly", https("codeload.github.com", "/o/r/tar.gz/main"), Reason.ALLOWED, "preset:github-readonly/3"),
    ("github-readonly", https("raw.githubusercontent.com", "/o/r/main/x"), Reason.ALLOWED, "preset:github-readonly/3"),
    (
        "github-readonly",
        https("objects.githubusercontent.com", "/x", "HEAD"),
        Reason.ALLOWED,
        "preset:github-readonly/3",
    ),
    ("github-readonly", https("api.github.com", "/repos/o/r"), Reason.ALLOWED, "preset:github-readonly/3"),
    # github-readonly: push is denied by name
    (
        "github-readonly",
        https("github.com", "/o/r.git/info/refs?service=git-receive-pack"),
        Reason.DENIED_BY_RULE,
        "preset:github-readonly/4",
    ),
    (
        "github-readonly",
        https("github.com", "/o/r.git/git-receive-pack", "POST"),
        Reason.DENIED_BY_RULE,
        "preset:github-readonly/5",
    ),
    (
        "github-readonly",
        https("github.com", "/o/r.git/info/refs?service=git-upload-pack&service=git-receive-pack"),
        Reason.DENIED_BY_RULE,
        "preset:github-readonly/4",
    ),
    # github-readonly: everything else
    ("github-readonly", https("github.com", "/o/r.git/info/refs"), Reason.QUERY_NOT_ALLOWED, None),
    ("github-readonly", https("github.com", "/o/r"), Reason.PATH_NOT_ALLOWED, None),
    ("github-readonly", https("api.github.com", "/graphql", "POST"), Reason.METHOD_NOT_ALLOWED, None),
    ("github-readonly", https("api.github.com", "/repos/o/r/issues", "POST"), Reason.METHOD_NOT_ALLOWED, None),
    ("github-readonly", https("gist.github.com", "/x"), Reason.NO_MATCHING_RULE, None),
    ("github-readonly", https("uploads.github.com", "/x", "POST"), Reason.NO_MATCHING_RULE, None),
    # anthropic and openai
    ("anthropic", https("api.anthropic.com", "/v1/messages", "POST"), Reason.ALLOWED, "preset:anthropic/1"),
    ("anthropic", https("api.anthropic.com", "/v1/files/x", "DELETE"), Reason.ALLOWED, "preset:anthropic/1"),
    ("anthropic", https("api.anthropic.com", "/v1/messages", "POST", 80), Reason.PORT_NOT_ALLOWED, None),
    ("anthropic", https("statsig.anthropic.com", "/v1/x", "POST"), Reason.NO_MATCHING_RULE, None),
    ("openai", https("api.openai.com", "/v1/responses", "POST"), Reason.ALLOWED, "preset:openai/1"),
    ("openai", https("chatgpt.com", "/backend-api/codex"), Reason.NO_MATCHING_RULE, None),
]


@pytest.mark.parametrize(
    ("name", "request_", "reason", "rule_id"),
    [pytest.param(*case, id=f"{case[0]}-{case[1].method}-{case[1].host}{case[1].path}") for case in BEHAVIOUR],
)
def test_preset_behaviour(name: str, request_: Request, reason: str, rule_id: str | None) -> None:
    """What each preset allows and denies, and which of its rules says so."""
    decision = Matcher(preset_policy(name)).decide(request_)
    assert decision.reason == reason
    assert (decision.rule.id if decision.rule else None) == rule_id


@pytest.mark.parametrize("preset", PRESETS.values(), ids=lambda preset: preset.name)
def test_docs_describe_each_preset(preset: Preset) -> None:
    """docs/policy.md names every preset and shows its description."""
    text = DOCS.read_text(encoding="utf-8")
    assert f"`preset:{preset.name}`" in text
    assert " ".join(preset.description.split()) in " ".join(text.split())
