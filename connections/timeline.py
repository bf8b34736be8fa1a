"""A connection's recent history as a strip of marks on a time axis (drawn as SVG by the template).

One glance tells when refreshes happened and which failed: a short green
mark per refresh, a tall red one per failure or refusal, blue for
authorizations. The axis spans the connection's last day, or less for a young
connection (at least half an hour), so its few marks are not squeezed
against the right edge.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from .models import Connection, EventKind
from .selectors import connection_events_since

WIDTH, HEIGHT = 720, 64
LEFT, RIGHT, BASELINE = 8, 712, 40
MAX_SPAN = timedelta(hours=24)
MIN_SPAN = timedelta(minutes=30)

# Event kind -> (CSS class, mark height)
STYLE = {
    EventKind.REFRESHED: ("ok", 14),
    EventKind.REFRESH_FAILED: ("failed", 30),
    EventKind.NEEDS_REAUTH: ("failed", 30),
    EventKind.AUTHORIZATION_FAILED: ("failed", 30),
    EventKind.REFRESH_DEFERRED: ("deferred", 22),
    EventKind.AUTHORIZED: ("auth", 26),
    EventKind.RECONNECTED: ("auth", 26),
    EventKind.RECOVERED: ("auth", 22),
}
OTHER = ("other", 10)
LEGEND = {
    "ok": "refreshed",
    "failed": "failed or refused",
    "deferred": "postponed",
    "auth": "authorized",
    "other": "other",
}


MARK_WIDTH = 3


@dataclass(frozen=True)
class Mark:
    x: float  # centre
    y: float
    height: int
    css: str
    label: str

    @property
    def left(self) -> float:
        return round(self.x - MARK_WIDTH / 2, 1)


@dataclass(frozen=True)
class Tick:
    x: float
    label: str

    @property
    def percent(self) -> float:
        """Where the label goes under the stretched drawing (HTML, so the text keeps its size)."""
        return round(100 * self.x / WIDTH, 2)


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    marks: list[Mark]
    ticks: list[Tick]
    summary: str
    legend: list[tuple[str, str]]
    width: int = WIDTH
    height: int = HEIGHT
    mark_width: int = MARK_WIDTH
    baseline: int = BASELINE
    left: int = LEFT
    right: int = RIGHT


def connection_timeline(connection: Connection, now: datetime | None = None) -> Timeline:
    now = now or timezone.now()
    events = connection_events_since(connection=connection, since=now - MAX_SPAN)
    first = events[0].created_at if events else now
    span = min(max(now - first, MIN_SPAN) * 1.05, MAX_SPAN)
    start = now - span
    marks = [_mark(event, start, span) for event in events]
    return Timeline(
        start=start,
        end=now,
        marks=marks,
        ticks=_ticks(start, now, span),
        summary=_summary(events, span),
        legend=[(css, label) for css, label in LEGEND.items() if any(m.css == css for m in marks)],
    )


def _x(moment: datetime, start: datetime, span: timedelta) -> float:
    share = (moment - start) / span
    return round(LEFT + min(max(share, 0.0), 1.0) * (RIGHT - LEFT), 1)


def _mark(event, start: datetime, span: timedelta) -> Mark:
    css, height = STYLE.get(event.kind, OTHER)
    label = f"{event.get_kind_display()} at {event.created_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if event.detail and event.kind != EventKind.REFRESHED:
        label = f"{label}: {event.detail[:160]}"
    return Mark(x=_x(event.created_at, start, span), y=BASELINE - height, height=height, css=css, label=label)


def _ticks(start: datetime, end: datetime, span: timedelta) -> list[Tick]:
    """Four or five labelled times on round minutes or hours."""
    step = next(
        (s for s in (timedelta(minutes=m) for m in (5, 10, 15, 30, 60, 120, 180, 360)) if span / s <= 5),
        timedelta(hours=6),
    )
    seconds = step.total_seconds()
    first = datetime.fromtimestamp((start.timestamp() // seconds + 1) * seconds, tz=UTC)
    ticks, moment = [], first
    while moment <= end:
        x = _x(moment, start, span)
        if LEFT + 24 <= x <= RIGHT - 24:  # a label at the very edge would stick out of the card
            ticks.append(Tick(x=x, label=f"{moment:%H:%M}"))
        moment += step
    return ticks


def _summary(events, span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    window = f"{hours:.0f} hours" if hours >= 2 else f"{span.total_seconds() / 60:.0f} minutes"
    refreshed = sum(1 for e in events if e.kind == EventKind.REFRESHED)
    failed = sum(1 for e in events if STYLE.get(e.kind, OTHER)[0] == "failed")
    if not events:
        return f"Nothing happened in the last {window}."
    return (
        f"In the last {window}: {refreshed} refresh{'es' if refreshed != 1 else ''}, "
        f"{failed} failure{'s' if failed != 1 else ''}."
    )
