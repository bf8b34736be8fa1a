"""Template helpers for the browser pages: times with their zone, durations, navigation links.

Times are shown in UTC, always with "UTC" after them, inside a ``<time>``
element whose ``datetime`` attribute carries the exact instant. Relative times
read "in 4 min", "12 s ago" or "just now", never "0 minutes ago".
"""

from datetime import UTC, datetime

from django import template
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from common.humanize import human_duration, relative

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """Relative time only: "in 4 min 10 s" or "3 min ago"."""
    return relative(value)


@register.filter
def when(value: datetime | None, fmt: str = "Y-m-d H:i:s") -> str:
    """``<time datetime="…">2026-05-01 13:04:05 UTC</time>``; "—" without a time."""
    if value is None:
        return "—"
    utc = value.astimezone(UTC)
    return format_html('<time datetime="{}">{} UTC</time>', utc.isoformat(), date_format(utc, fmt))


@register.filter
def when_rel(value: datetime | None) -> str:
    """Absolute and relative: ``2026-05-01 13:04:05 UTC (in 4 min)``."""
    if value is None:
        return "—"
    return format_html('{} <span class="rel">({})</span>', when(value), relative(value))


@register.filter
def ago_title(value: datetime | None) -> str:
    """Relative time with the exact UTC time on hover: for lists."""
    if value is None:
        return "—"
    utc = value.astimezone(UTC)
    return format_html(
        '<time datetime="{}" title="{} UTC">{}</time>', utc.isoformat(), f"{utc:%Y-%m-%d %H:%M:%S}", relative(value)
    )


@register.filter
def duration_ms(value: int | None) -> str:
    """ "599999 ms (about 10 minutes)"; "never" for 0 or nothing."""
    if not value:
        return "never"
    return f"{value} ms ({human_duration(value / 1000)})"


@register.simple_tag(takes_context=True)
def nav_link(context, href: str, label: str, exact: bool = False, css: str = "") -> str:
    """A link marked ``aria-current="page"`` on its own page (``exact``) or anywhere below it."""
    path = context["request"].path
    current = path == href if exact else path.startswith(href)
    return format_html(
        '<a href="{}"{}{}>{}</a>',
        href,
        format_html(' class="{}"', css) if css else "",
        mark_safe(' aria-current="page"') if current else "",
        label,
    )
