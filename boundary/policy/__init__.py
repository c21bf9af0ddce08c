"""The policy language, pure from end to end: text in, frozen objects and decisions out, no I/O but
`load.load_policy` reading files.

canon (the one form hosts, paths and queries are compared in), patterns (domain patterns, path globs), model
(`Rule`, `Limits`, `Policy`), nodes and language (the YAML tables the parser walks and `schema` renders),
presets, load (files and includes -> `Policy`), matcher (`Matcher(policy).decide(request) -> Decision`), lint,
tool (what `boundary policy` prints).
"""
