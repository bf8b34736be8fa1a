from django.shortcuts import redirect
from django.templatetags.static import static


def favicon(request):
    """``/favicon.ico`` for clients that ask for it without reading the page's icon link."""
    return redirect(static("favicon.svg"), permanent=True)
