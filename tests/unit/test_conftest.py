"""tests/conftest.py's hooks, run in an inner pytest session: CI=true allows no skips; privilege marks skip."""

from __future__ import annotations

import pytest

from tests.support import tools

_HOOKS = """
from tests.conftest import pytest_make_collect_report, pytest_runtest_makereport, pytest_runtest_setup
"""

_TESTS = """
import pytest

def test_skips():
    pytest.skip("no frobnicator here")

@pytest.mark.skipif(True, reason="marked away")
def test_marked_skip():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False

def test_passes():
    pass
"""


# hypothesis's plugin costs about a second per inner session (its terminal summary imports a lot).
_FAST = ("-p", "no:hypothesispytest", "-p", "no:cacheprovider")


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(_HOOKS)
    return pytester


def test_under_ci_a_skip_is_a_failure_that_quotes_the_reason(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    inner.makepyfile(_TESTS)
    result = inner.runpytest(*_FAST, "-rA")
    result.assert_outcomes(passed=1, failed=1, errors=1, xfailed=1)
    result.stdout.fnmatch_lines(["*no test may skip: no frobnicator here*", "*no test may skip: marked away*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_outside_ci_skips_stay_skips(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    inner.makepyfile(_TESTS)
    result = inner.runpytest(*_FAST)
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_under_ci_a_skipped_module_is_an_error(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    inner.makepyfile('import pytest\npytest.skip("whole module away", allow_module_level=True)\n')
    result = inner.runpytest(*_FAST)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no test may skip: whole module away*"])


def test_root_mark_skips_without_root_saying_why(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(tools, "is_root", lambda: False)
    inner.makepyfile("import pytest\n@pytest.mark.root\ndef test_needs_root():\n    pass\n")
    result = inner.runpytest(*_FAST, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*{tools.ROOT_SKIP_REASON}*"])


def test_root_mark_runs_the_test_as_root(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "is_root", lambda: True)
    inner.makepyfile("import pytest\n@pytest.mark.root\ndef test_needs_root():\n    pass\n")
    inner.runpytest(*_FAST).assert_outcomes(passed=1)


def test_userns_mark_skips_with_the_probes_reason(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(tools, "userns_unavailable_reason", lambda: "needs unprivileged user namespaces: nope")
    inner.makepyfile(
        "import pytest\n@pytest.mark.userns\ndef test_a():\n    pass\n@pytest.mark.rootless\ndef test_b():\n    pass\n"
    )
    result = inner.runpytest(*_FAST, "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*needs unprivileged user namespaces: nope*"])
