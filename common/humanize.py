"""Durations and relative times as people read them: "4 min 10 s", "in 42 s", "about 10 minutes"."""

from datetime import datetime

from django.utils import timezone

_UNITS = ((86400, "day", "days"), (3600, "h", "h"), (60, "min", "min"), (1, "s", "s"))


def span(seconds: float, *, parts: int = 2) -> str:
    """A short duration: "42 s", "4 min 10 s", "2 h 5 min", "3 days 4 h"."""
    seconds = int(round(abs(seconds)))
    if seconds == 0:
        return "0 s"
    pieces: list[str] = []
    for size, one, many in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            pieces.append(f"{count} {one if count == 1 else many}")
        elif pieces:
            break  # "2 h", not "2 h 0 min"
        if len(pieces) == parts:
            break
    return " ".join(pieces)


def relative(value: datetime | None, now: datetime | None = None) -> str:
    """ "in 4 min 10 s", "3 min ago", "just now"; "" without a time."""
    if value is None:
        return ""
    delta = (value - (now or timezone.now())).total_seconds()
    if abs(delta) < 1:
        return "just now"
    return f"in {span(delta)}" if delta > 0 else f"{span(delta)} ago"


def human_duration(seconds: float) -> str:
    """ "10 minutes", "1 hour", "30 days", with "about" when not exact to the second."""
    exact = abs(seconds - round(seconds)) < 1e-9
    whole = round(seconds)
    for size, one, many in ((86400, "day", "days"), (3600, "hour", "hours"), (60, "minute", "minutes")):
        if whole >= size:
            count = whole / size
            shown = round(count)
            label = f"{shown} {one if shown == 1 else many}"
            return label if exact and count == shown else f"about {label}"
    return f"{whole} second{'s' if whole != 1 else ''}" if exact else f"about {whole} seconds"
