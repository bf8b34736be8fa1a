"""Log filters for the development console."""

import logging

# Pages poll their live parts with ``?partial=<name>`` (htmx); see templates/connections/.
POLL_MARKER = "partial="


class QuietPolls(logging.Filter):
    """Drop the development server's line for a successful live-status poll.

    ``runserver`` logs every request (``"GET /w/acme/connections/?partial=rows
    HTTP/1.1" 200 …``); an open page polls every few seconds, which would push
    the admin password and the development e-mails off the console. Failed
    polls (4xx, 5xx) are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) < 2 or POLL_MARKER not in str(args[0]):
            return True
        try:
            return int(str(args[1])) >= 400
        except ValueError:
            return True
