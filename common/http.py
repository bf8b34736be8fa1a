def client_ip(request) -> str | None:
    """The caller's address as the web server saw it.

    Behind a proxy, configure it to set REMOTE_ADDR (e.g. gunicorn's
    ``--forwarded-allow-ips``); X-Forwarded-For is never trusted here.
    """
    return request.META.get("REMOTE_ADDR") or None
