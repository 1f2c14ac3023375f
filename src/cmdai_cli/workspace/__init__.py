"""The workspace as Segment's Public API sees it: is data flowing, and where does it stop?

`window` holds the time rules (durations, granularities and the limits Segment sets on
them), `readings` the Public API calls that `status` needs, turned into typed values,
and `status` the one request, the one core function and the verdict.
"""
