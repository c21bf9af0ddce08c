"""What a denied client is told: the 403's headers and its one-line body. Pure, rendered from the decision."""

from __future__ import annotations

import json

from boundary.reasons import REASONS, Reason

HEADER_DECISION = "X-Boundary-Decision"
HEADER_REASON = "X-Boundary-Reason"


def suggested_rule(host: str, port: int, method: str | None, path: str | None) -> str:
    parts = [f"domain: {host}"]
    if port not in (80, 443):
        parts.append(f"ports: [{port}]")
    if method is not None:
        parts.append(f"methods: [{method}]")
    if path is not None:
        parts.append(f"paths: [{json.dumps(path.split('?', 1)[0])}]")
    return "{" + ", ".join(parts) + "}"


def hint(reason: Reason, host: str | None, port: int, method: str | None, path: str | None) -> str:
    """How to allow it: the reason's hint in `boundary.reasons.REASONS`, its `{rule}` a rule that would have
    allowed the request."""
    rule = suggested_rule(host, port, method, path) if host else ""
    return REASONS[reason].hint.format(rule=rule)


def denial_text(reason: Reason, method: str | None, url: str, host: str | None, port: int, path: str | None) -> str:
    """One line, ending in a newline: what was denied, why, and how to allow it (`hint`)."""
    what = f"{method} {url}" if method else url
    return f"boundary denied {what} ({reason}); to allow it, {hint(reason, host, port, method, path)}\n"
