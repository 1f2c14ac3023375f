"""Segment's Tracking API: its message rules and limits (`messages`), and sending (`sender`).

Nothing is imported here, so that `messages` stays as cheap to import as plain constants.
"""
