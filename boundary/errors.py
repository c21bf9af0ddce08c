"""The one exception family. Only the CLI translates it: `boundary: <message>` on stderr, exit 125 (2 for the
`boundary policy` commands)."""


class BoundaryError(Exception):
    """Anything that stops boundary from doing what was asked; the message is shown to the user as is."""


class PolicyError(BoundaryError):
    """A policy file is missing or invalid. The message starts with `FILE:LINE:`."""


class CasesError(BoundaryError):
    """A `boundary policy test` cases file is missing or invalid. The message starts with `FILE:LINE:`."""


class UsageError(BoundaryError):
    """A command-line value is malformed (quoted in the message)."""


class ProxyError(BoundaryError):
    """The proxy could not start, or stopped while the command ran: the command was stopped (fail closed)."""


class JailError(BoundaryError):
    """The jail could not be set up; nothing was started."""


class LogError(BoundaryError):
    """An audit log cannot be read, or there is none to read (`boundary log`)."""
