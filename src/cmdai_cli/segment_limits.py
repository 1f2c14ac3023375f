"""Segment's Tracking API limits and message types, in one place.

Plain constants with no imports, so the receiver, the mapping rules, the Segment client
and replay's batcher can share them without loading each other's dependencies.
"""

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_BYTES = 32 * 1024
# Segment documents "500 KB" per batch request. The receiver accepts the binary reading;
# senders keep to the decimal one, so that neither reading refuses what they send.
MAX_BATCH_BYTES = 500 * 1024
SEND_BATCH_BYTES = 500_000
MAX_BATCH_MESSAGES = 2500
MAX_MESSAGE_ID = 100
