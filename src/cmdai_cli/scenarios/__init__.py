"""Scenarios for `cmdai trigger`: Command AI traffic from one flow to a day of users.

Modules, in the order a scenario meets them: `format` (a TOML file read and checked,
each mistake named by file, line and step), `values` (the values a step can hold:
literals, choices, ranges and references, compiled once), `generate` (users, sessions
and events, deterministic by seed), `run` (the request, the checks against the built-in
tracking plan and Segment's limits, writing NDJSON or sending through replay's delivery).
The built-in scenarios are TOML files in `builtin/`, in the format a user writes.
"""
