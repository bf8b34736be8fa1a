"""A short way through the web stack for the API's hottest request.

``GET …/connections/{id}/token`` with an API key is what integrations call
before every job and often before every call. It needs none of what the
middleware below this one does for browsers (sessions, CSRF, the signed-in
user, messages, allauth) nor DRF's dispatch (content negotiation, throttles,
parsers): with them it cost ~4 ms of CPU, against ~0.2 ms for ``/healthz``
(docs/benchmarks.md). Such a request is handed straight to the view named in
``API_FAST_PATHS`` (URL name → dotted path of a plain view with the URL's
arguments), which runs the same tenancy checks and gives the same answers and
errors as the DRF view that documents the endpoint.

Only ``GET`` with ``Authorization: Bearer …`` and no query string takes the
short way; everything else (browser sessions, ``?min_valid=…``, HEAD,
OPTIONS, any other URL) goes through the whole stack as before. The views in
``API_FAST_PATHS_ANY`` (the provider proxy: any method, any query string,
bodies streamed) take it for every request with an API key. Put this
middleware right after ``SecurityMiddleware`` (HTTPS redirect, HSTS) and the
request id, so those still apply.
"""

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import get_resolver
from django.utils.module_loading import import_string

# What DRF's view would add further down the stack (XFrameOptionsMiddleware).
_HEADERS = {"X-Frame-Options": "DENY"}


class ApiFastPathMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self._routes: list[tuple[re.Pattern, dict, Callable, bool]] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if meta.get("HTTP_AUTHORIZATION", "")[:7].lower() == "bearer " and request.path_info.startswith("/api/"):
            plain = request.method == "GET" and not meta.get("QUERY_STRING")
            for pattern, converters, view, any_request in self.routes():
                if (plain or any_request) and (match := pattern.match(request.path_info, 1)):
                    return self._answer(request, view, match.groupdict(), converters)
        return self.get_response(request)

    def _answer(self, request: HttpRequest, view: Callable, kwargs: dict, converters: dict) -> HttpResponse:
        for name, converter in converters.items():
            kwargs[name] = converter.to_python(kwargs[name])
        response = view(request, **kwargs)
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def routes(self) -> list[tuple[re.Pattern, dict, Callable, bool]]:
        """Each fast view's full URL pattern, taken from the URLconf (so the two cannot disagree).

        ``resolve()`` walks every pattern before the API's (~60 µs for the
        token URL); one anchored regex per fast view is a few µs.
        """
        if self._routes is None:
            resolver = get_resolver()
            self._routes = [
                (re.compile(pattern), converters, import_string(path), any_request)
                for paths, any_request in (
                    (settings.API_FAST_PATHS, False),
                    (getattr(settings, "API_FAST_PATHS_ANY", {}), True),
                )
                for name, path in paths.items()
                for _, pattern, _, converters in resolver.reverse_dict.getlist(name)
            ]
        return self._routes
