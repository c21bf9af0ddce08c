"""Specification of `boundary.policy.load`: parsing a document and what it includes into one Policy (its source,
empty documents, ids unique across everything included, files and presets included once, in order, cycles and
depth refused, network and limits settings across includes) and reading policy files from disk."""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path

import pytest

from boundary.errors import CasesError, PolicyError
from boundary.policy.load import IncludeLoader, load_policy, parse_policy, read_text
from boundary.policy.model import DEFAULT_PORTS, Limits, Policy
from tests.unit.policy.documents import FULL, networks, parse_error, rules_text

# ---------------------------------------------------------------------------------------------------------------
# One document


@pytest.mark.parametrize("text", ["version: 1\n", "version: 1\nallow: []\n"])
def test_policy_remembers_its_source(text: str) -> None:
    """A policy remembers the source it was parsed from."""
    assert parse_policy(text, "p.yaml").source == "p.yaml"


LOAD_ERRORS = [
    pytest.param("<string>", "", "<string>:1: empty policy (expected 'version: 1')", id="empty"),
    pytest.param("<string>", "# nothing\n", "<string>:1: empty policy (expected 'version: 1')", id="only-comment"),
    pytest.param("<string>", "---\n", "<string>:1: empty policy (expected 'version: 1')", id="null-document"),
    pytest.param(
        "team.yaml", "version: 3\n", "team.yaml:1: version: unsupported version 3 (expected 1)", id="source-named"
    ),
    pytest.param(
        "<string>",
        "version: 1\ninclude: [other.yaml]\n",
        "<string>:2: include: cannot include 'other.yaml': no file loader (use load_policy)",
        id="include-file-without-loader",
    ),
    # ids are unique across the allow and deny rules of the policy and everything it includes
    pytest.param(
        "<string>",
        rules_text("  - domain: a.example", "    id: x", "  - domain: b.example", "    id: x"),
        "<string>:6: allow[1].id: duplicate id 'x' (also the id of the rule at <string>:3)",
        id="id-duplicate",
    ),
    pytest.param(
        "<string>",
        "version: 1\nallow:\n  - {domain: a.example, id: x}\ndeny:\n  - domain: b.example\n    id: x\n",
        "<string>:6: deny[0].id: duplicate id 'x' (also the id of the rule at <string>:3)",
        id="id-duplicate-across-allow-and-deny",
    ),
    pytest.param(
        # without `id:`, a rule's id is FILE:LINE, and an explicit id may not take one that is in use
        "p.yaml",
        "version: 1\nallow:\n  - domain: a.example\n  - domain: b.example\n    id: p.yaml:3\n",
        "p.yaml:5: allow[1].id: duplicate id 'p.yaml:3' (also the id of the rule at p.yaml:3)",
        id="default-id-in-use",
    ),
]


@pytest.mark.parametrize(("source", "text", "message"), LOAD_ERRORS)
def test_load_errors_name_the_source_given(source: str, text: str, message: str) -> None:
    """A problem with the document as a whole is a PolicyError `SOURCE:LINE: message`, SOURCE as given."""
    assert parse_error(text, source) == message


def test_rule_id_is_its_source() -> None:
    """A rule without an `id:` key is identified by where it starts."""
    (parsed,) = parse_policy(FULL, "p.yaml").rules
    assert parsed.id == parsed.source == "p.yaml:3"


def test_preset_rule_ids() -> None:
    """A preset's rules are numbered in the order the preset lists them, allow rules then deny rules."""
    policy = parse_policy("version: 1\ninclude: [preset:github-readonly]\n")
    assert [r.id for r in policy.rules] == [f"preset:github-readonly/{n}" for n in (1, 2, 3)]
    assert [r.id for r in policy.deny] == [f"preset:github-readonly/{n}" for n in (4, 5)]
    assert all(r.source.startswith("preset:github-readonly:") for r in (*policy.rules, *policy.deny))
    assert policy.includes == ("preset:github-readonly",)


# ---------------------------------------------------------------------------------------------------------------
# include


def memory_loader(files: Mapping[str, str]) -> IncludeLoader:
    """An IncludeLoader over in-memory files, resolving references like load_policy does."""

    def load(reference: str, including: str) -> tuple[str, str]:
        name = posixpath.normpath(posixpath.join(posixpath.dirname(including), reference))
        if name not in files:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        text = files[name]
        if text.startswith("\udcff"):
            raise UnicodeDecodeError("utf-8", b"abc\xff", 3, 4, "invalid start byte")
        return name, text

    return load


def parse_files(files: Mapping[str, str]) -> Policy:
    return parse_policy(files["main.yaml"], "main.yaml", load=memory_loader(files))


def allow_doc(*domains: str, include: str = "") -> str:
    """A document (rules from line 3, or 4 with an include) allowing each domain."""
    head = f"version: 1\ninclude: [{include}]\n" if include else "version: 1\n"
    return head + "allow:\n" + "".join(f"  - domain: {domain}\n" for domain in domains)


def test_included_rules_come_first() -> None:
    """Included documents' rules precede the including file's own, each citing its own file and line."""
    policy = parse_files(
        {"main.yaml": allow_doc("m.example", include="b.yaml, preset:openai"), "b.yaml": allow_doc("b.example")}
    )
    assert [(r.domain, r.source) for r in policy.rules] == [
        ("b.example", "b.yaml:3"),
        ("api.openai.com", "preset:openai:3"),
        ("m.example", "main.yaml:4"),
    ]
    assert policy.includes == ("b.yaml", "preset:openai")
    assert policy.source == "main.yaml"


def test_includes_resolve_relative_to_the_including_file() -> None:
    """`include: [c.yaml]` in sub/b.yaml means sub/c.yaml; `..` climbs from there."""
    policy = parse_files(
        {
            "main.yaml": allow_doc(include="sub/b.yaml"),
            "sub/b.yaml": allow_doc("b.example", include="c.yaml, ../top.yaml"),
            "sub/c.yaml": allow_doc("c.example"),
            "top.yaml": allow_doc("top.example"),
        }
    )
    assert [r.source for r in policy.rules] == ["sub/c.yaml:3", "top.yaml:3", "sub/b.yaml:4"]


def test_a_document_is_included_once() -> None:
    """Two paths to the same document (a diamond) include it once: its rules and ids appear once."""
    policy = parse_files(
        {
            "main.yaml": allow_doc("m.example", include="b.yaml, c.yaml, preset:pypi"),
            "b.yaml": allow_doc("b.example", include="d.yaml, preset:pypi"),
            "c.yaml": allow_doc("c.example", include="./d.yaml"),
            "d.yaml": "version: 1\nallow:\n  - {domain: d.example, id: d}\n",
        }
    )
    assert [r.domain for r in policy.rules] == [
        "d.example",
        "pypi.org",
        "files.pythonhosted.org",
        "b.example",
        "c.example",
        "m.example",
    ]
    assert policy.includes == ("b.yaml", "d.yaml", "preset:pypi", "c.yaml")


def test_defaults_stay_in_their_file() -> None:
    """`defaults` applies to the rules of its own file, not to the files it includes, nor to the includer."""
    policy = parse_files(
        {
            "main.yaml": "version: 1\ninclude: [b.yaml]\ndefaults: {ports: [8443]}\nallow:\n  - domain: m.example\n",
            "b.yaml": allow_doc("b.example", include="c.yaml"),
            "c.yaml": "version: 1\ndefaults: {ports: [22]}\nallow:\n  - domain: c.example\n",
        }
    )
    assert {r.domain: r.ports for r in policy.rules} == {
        "c.example": frozenset({22}),
        "b.example": DEFAULT_PORTS,
        "m.example": frozenset({8443}),
    }


def test_deny_rules_of_included_files() -> None:
    """Deny rules from every document are collected too, included ones first."""
    policy = parse_files(
        {
            "main.yaml": "version: 1\ninclude: [b.yaml]\ndeny:\n  - domain: m.example\n",
            "b.yaml": "version: 1\ndeny:\n  - domain: b.example\n",
        }
    )
    assert [r.source for r in policy.deny] == ["b.yaml:3", "main.yaml:4"]
    assert policy.rules == ()


def test_network_settings_of_included_files_apply() -> None:
    """`allow_private` is for the whole run: the ranges of every document count, included ones first."""
    policy = parse_files(
        {
            "main.yaml": "version: 1\ninclude: [b.yaml]\nnetwork: {allow_private: [10.0.0.0/8, 127.0.0.0/8]}\n",
            "b.yaml": "version: 1\nnetwork: {allow_private: [127.0.0.0/8]}\n",
        }
    )
    assert policy.allow_private == networks("127.0.0.0/8", "10.0.0.0/8")


def test_limits_of_the_top_file_hold_with_includes() -> None:
    """The top file's `limits` hold for the whole run, whatever it includes."""
    policy = parse_files(
        {"main.yaml": "version: 1\ninclude: [b.yaml]\nlimits: {request_headers: 40}\n", "b.yaml": allow_doc("b.test")}
    )
    assert policy.limits == Limits(65536, 40)


def chain(length: int) -> dict[str, str]:
    """main.yaml -> f1.yaml -> ... -> f{length}.yaml."""
    files = {"main.yaml": allow_doc(include="f1.yaml")}
    for n in range(1, length):
        files[f"f{n}.yaml"] = allow_doc(include=f"f{n + 1}.yaml")
    files[f"f{length}.yaml"] = allow_doc("end.example")
    return files


INCLUDE_ERRORS = [
    pytest.param(
        {
            "main.yaml": allow_doc(include="b.yaml"),
            "b.yaml": "version: 1\nallow:\n  - domain: a\n    methods: [GETT]\n",
        },
        "b.yaml:4: allow[0].methods: unknown method 'GETT'",
        id="error-in-included-file",
    ),
    pytest.param(
        {
            "main.yaml": allow_doc(include="sub/b.yaml"),
            "sub/b.yaml": allow_doc(include="c.yaml"),
            "sub/c.yaml": "version: 1\nalow: []\n",
        },
        "sub/c.yaml:2: unknown key 'alow'",
        id="error-two-levels-down",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="b.yaml"), "b.yaml": ""},
        "b.yaml:1: empty policy (expected 'version: 1')",
        id="included-file-empty",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="b.yaml"), "b.yaml": "allow: []\n"},
        "b.yaml:1: missing required key 'version'",
        id="included-file-without-version",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="b.yaml"), "b.yaml": "version: 1\nallow: [\n"},
        "b.yaml:3: invalid YAML: expected the node content, but found '<stream end>' (while parsing a flow node)",
        id="included-file-invalid-yaml",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="main.yaml")},
        "main.yaml:2: include: cycle: main.yaml -> main.yaml",
        id="includes-itself",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="./sub/../main.yaml")},
        "main.yaml:2: include: cycle: main.yaml -> main.yaml",
        id="includes-itself-by-another-name",
    ),
    pytest.param(
        {
            "main.yaml": allow_doc(include="b.yaml"),
            "b.yaml": allow_doc(include="c.yaml"),
            "c.yaml": "version: 1\ninclude:\n  - preset:npm\n  - b.yaml\n",
        },
        "c.yaml:4: include: cycle: b.yaml -> c.yaml -> b.yaml",
        id="cycle-below-the-root",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="b.yaml"), "b.yaml": allow_doc(include="main.yaml")},
        "b.yaml:2: include: cycle: main.yaml -> b.yaml -> main.yaml",
        id="cycle-through-the-root",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="nope.yaml")},
        f"main.yaml:2: include: cannot read 'nope.yaml': {os.strerror(errno.ENOENT)}",
        id="missing-file",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="bad.yaml"), "bad.yaml": "\udcff"},
        "main.yaml:2: include: cannot read 'bad.yaml': not UTF-8 text (byte 3)",
        id="not-utf8",
    ),
    pytest.param(
        {
            "main.yaml": "version: 1\ninclude: [b.yaml]\nallow:\n  - domain: m.example\n    id: x\n",
            "b.yaml": "version: 1\nallow:\n  - {domain: b.example, id: x}\n",
        },
        "main.yaml:5: allow[0].id: duplicate id 'x' (also the id of the rule at b.yaml:3)",
        id="duplicate-id-across-files",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="b.yaml"), "b.yaml": "version: 1\nnetwork:\n  allow_private: [x]\n"},
        "b.yaml:3: network.allow_private: invalid address range 'x': expected an IPv4 or IPv6 address or CIDR range"
        " such as 10.0.0.0/8 or fd00::/8",
        id="network-error-in-included-file",
    ),
    pytest.param(
        # limits are for the whole run, so only the top file sets them: an included file saying otherwise would
        # be silently overruled or would overrule the file the operator runs
        {"main.yaml": allow_doc("a.test", include="b.yaml"), "b.yaml": "version: 1\nlimits:\n  request_head: 8192\n"},
        "b.yaml:3: limits: limits apply to the whole run: set them in the top policy file",
        id="limits-in-included-file",
    ),
    pytest.param(chain(15), None, id="fifteen-levels-are-fine"),
    pytest.param(chain(16), "f15.yaml:2: include: includes nested more than 16 deep", id="sixteen-levels-are-not"),
]


@pytest.mark.parametrize(("files", "message"), INCLUDE_ERRORS)
def test_include_errors_name_the_file_they_are_in(files: dict[str, str], message: str | None) -> None:
    """A problem in or with an included document names that document's FILE:LINE (None: no problem)."""
    if message is None:
        assert parse_files(files).rules[0].domain == "end.example"
        return
    with pytest.raises(PolicyError) as raised:
        parse_files(files)
    assert str(raised.value) == message


# ---------------------------------------------------------------------------------------------------------------
# Files


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    """A file parses with its name, as given, as the source of the policy and of each rule."""
    path = tmp_path / "p.yaml"
    path.write_text(FULL, encoding="utf-8")
    policy = load_policy(path)
    assert policy.source == str(path)
    assert [r.source for r in policy.rules] == [f"{path}:3"]


def test_load_policy_reports_errors_with_the_file_name(tmp_path: Path) -> None:
    """Errors in a file name that file."""
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nallow:\n  - domain: a.example\n    metods: [GET]\n", encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(str(path))
    assert str(raised.value) == f"{path}:4: allow[0]: unknown key 'metods'"


def test_load_policy_missing_file(tmp_path: Path) -> None:
    """A missing file is a PolicyError quoting the path and the system's reason."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(raised.value) == f"{path}: cannot read policy: {os.strerror(2)}"


def test_load_policy_directory(tmp_path: Path) -> None:
    """A directory is not a policy file."""
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path)
    assert str(raised.value) == f"{tmp_path}: cannot read policy: {os.strerror(21)}"


def test_load_policy_not_utf8(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are refused with their offset."""
    path = tmp_path / "p.yaml"
    path.write_bytes(b"version: 1\n\xff\n")
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(raised.value) == f"{path}: cannot read policy: not UTF-8 text (byte 11)"


def test_read_text_drops_bom_and_raises_the_given_error(tmp_path: Path) -> None:
    """read_text serves every file the CLI reads: the BOM goes, and a failure is the caller's error class."""
    path = tmp_path / "cases.yaml"
    path.write_bytes(b"\xef\xbb\xbf- a\n")
    assert read_text(str(path), "cases", CasesError) == "- a\n"
    path.write_bytes(b"- \xff\n")
    with pytest.raises(CasesError) as raised:
        read_text(str(path), "cases", CasesError)
    assert str(raised.value) == f"{path}: cannot read cases: not UTF-8 text (byte 2)"


def test_load_policy_includes_files_relative_to_the_including_file(tmp_path: Path) -> None:
    """load_policy reads included files from the including file's directory, and names them that way."""
    (tmp_path / "team").mkdir()
    (tmp_path / "p.yaml").write_text(allow_doc("p.example", include="team/base.yaml"), encoding="utf-8")
    (tmp_path / "team" / "base.yaml").write_text(allow_doc("b.example", include="more.yaml"), encoding="utf-8")
    (tmp_path / "team" / "more.yaml").write_text("\ufeff" + allow_doc("m.example"), encoding="utf-8")
    policy = load_policy(tmp_path / "p.yaml")
    base, more = str(tmp_path / "team" / "base.yaml"), str(tmp_path / "team" / "more.yaml")
    assert [r.source for r in policy.rules] == [f"{more}:3", f"{base}:4", f"{tmp_path / 'p.yaml'}:4"]
    assert policy.includes == (base, more)


def test_load_policy_include_errors(tmp_path: Path) -> None:
    """A missing included file is reported where the include is; a cycle through real files is named."""
    (tmp_path / "p.yaml").write_text(allow_doc(include="absent.yaml"), encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path / "p.yaml")
    assert str(raised.value) == f"{tmp_path / 'p.yaml'}:2: include: cannot read 'absent.yaml': {os.strerror(2)}"
    (tmp_path / "p.yaml").write_text(allow_doc(include="p.yaml"), encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path / "p.yaml")
    assert (
        str(raised.value) == f"{tmp_path / 'p.yaml'}:2: include: cycle: {tmp_path / 'p.yaml'} -> {tmp_path / 'p.yaml'}"
    )


def test_load_policy_cycle_through_a_relative_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A root named `./p.yaml` is the same document as `p.yaml` for cycle detection."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(allow_doc(include="p.yaml"), encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy("./p.yaml")
    assert str(raised.value) == "./p.yaml:2: include: cycle: ./p.yaml -> p.yaml"


def test_load_policy_include_not_utf8(tmp_path: Path) -> None:
    """An included file that is not UTF-8 is refused at the include, with the offset."""
    (tmp_path / "p.yaml").write_text(allow_doc(include="b.yaml"), encoding="utf-8")
    (tmp_path / "b.yaml").write_bytes(b"version: 1\n\xff\n")
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path / "p.yaml")
    assert str(raised.value) == f"{tmp_path / 'p.yaml'}:2: include: cannot read 'b.yaml': not UTF-8 text (byte 11)"
