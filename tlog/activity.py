"""Entries per minute, from the minutes a log records (pure).

Both storage shapes record, in the first batch of each UTC minute, the index of the first
entry appended in it. Entries `[first, next first)` were therefore appended in that minute,
and a minute with no record had no appends. This is the log's own clock, not a signed time:
witness cosignatures are the signed bound (docs/explorer.md).
"""

from __future__ import annotations

MAX_MINUTES = 1440  # a day of minutes in one answer


def per_minute(records: list[tuple[int, int]], size: int, now: float,
               minutes: int) -> list[dict[str, int]]:
    """`minutes` rows {"start", "entries"}, oldest first, the last for the current minute.

    `records` are (first index, minute start) ascending, covering at least the window."""
    current = int(now) // 60 * 60
    start = current - 60 * (minutes - 1)
    counts: dict[int, int] = {}
    for k, (first, minute) in enumerate(records):
        end = records[k + 1][0] if k + 1 < len(records) else size
        if minute >= start:
            counts[minute] = counts.get(minute, 0) + max(0, end - first)
    return [{"start": m, "entries": counts.get(m, 0)} for m in range(start, current + 1, 60)]
