"""Reading audit logs: `read` parses them into frozen records (and problems, each `FILE:LINE: why`) and lists
the runs' logs; `view` filters and renders them. `boundary log` is their command line; `learn` and `replay`
are meant to read logs through `read` too."""
