"""boundary: a process-level egress firewall for AI coding agents."""

__version__ = "0.1.0"
