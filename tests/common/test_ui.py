"""What the pages print for times and durations, their navigation marks, and the quiet development log."""

import logging
from datetime import UTC, datetime, timedelta

from django.template import Context, Template
from django.test import RequestFactory

from common.humanize import human_duration, relative, span
from common.logfilters import QuietPolls
from common.templatetags.ui import duration_ms, when, when_rel

NOW = datetime(2026, 5, 1, 13, 4, 5, tzinfo=UTC)


def test_spans_read_as_people_say_them():
    assert [span(s) for s in (0.2, 42, 65, 3600, 3725, 90000)] == [
        "0 s",
        "42 s",
        "1 min 5 s",
        "1 h",
        "1 h 2 min",
        "1 day 1 h",
    ]


def test_relative_times_never_say_zero_minutes_ago():
    assert relative(NOW, now=NOW + timedelta(milliseconds=300)) == "just now"
    assert relative(NOW - timedelta(seconds=12), now=NOW) == "12 s ago"
    assert relative(NOW + timedelta(minutes=4, seconds=10), now=NOW) == "in 4 min 10 s"
    assert relative(None) == ""


def test_times_carry_their_zone_and_exact_instant():
    assert when(NOW) == '<time datetime="2026-05-01T13:04:05+00:00">2026-05-01 13:04:05 UTC</time>'
    assert when(None) == "—"
    assert 'UTC</time> <span class="rel">(' in when_rel(NOW)


def test_durations_in_milliseconds_say_what_they_mean():
    assert duration_ms(599_999) == "599999 ms (about 10 minutes)"
    assert duration_ms(2_592_000_000) == "2592000000 ms (30 days)"
    assert duration_ms(7_775_999_999) == "7775999999 ms (about 90 days)"
    assert duration_ms(0) == "never"
    assert human_duration(3600) == "1 hour"


def test_a_navigation_link_marks_its_own_page_and_the_pages_below_it():
    template = Template(
        '{% load ui %}{% nav_link "/w/acme/" "Overview" exact=True %}{% nav_link "/w/acme/admin/" "Admin" %}'
    )
    html = template.render(Context({"request": RequestFactory().get("/w/acme/admin/members/")}))
    assert html == '<a href="/w/acme/">Overview</a><a href="/w/acme/admin/" aria-current="page">Admin</a>'


def record(line: str, status: str) -> logging.LogRecord:
    return logging.LogRecord("django.server", logging.INFO, __file__, 1, '"%s" %s %s', (line, status, "512"), None)


def test_the_development_log_drops_successful_polls_only():
    quiet = QuietPolls()
    assert not quiet.filter(record("GET /w/acme/connections/?partial=rows HTTP/1.1", "200"))
    assert quiet.filter(record("GET /w/acme/connections/?partial=rows HTTP/1.1", "500"))
    assert quiet.filter(record("GET /w/acme/connections/ HTTP/1.1", "200"))
    assert quiet.filter(logging.LogRecord("x", logging.INFO, __file__, 1, "plain message", None, None))
