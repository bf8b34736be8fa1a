"""Driving the Django admin from tests the way a browser would: read the form a page
renders (every input, select and textarea, as it would be submitted), change some
values, post it back."""

from html.parser import HTMLParser

from django.urls import reverse


class _AdminForm(HTMLParser):
    """The fields of the form with id ``form_id``, as a browser would submit them."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or a.get("disabled") is not None:
            return
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.setdefault(name, []).append(a.get("value") or ("on" if a.get("type") == "checkbox" else ""))
        elif tag == "select" and name:
            self._select, self._options = name, []
            self.data.setdefault(name, [])
        elif tag == "option" and self._select:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea][0] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select:
            chosen = [value for value, selected in self._options if selected]
            self.data[self._select] += chosen or [value for value, _ in self._options[:1]]
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def admin_url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def submit_admin_form(client, url: str, **changes):
    """GET the add/change page at ``url``, change ``changes`` (``None`` unticks), POST it back."""
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    parser = _AdminForm(f"{page.context['opts'].model_name}_form")
    parser.feed(page.content.decode())
    data = {name: values if len(values) != 1 else values[0] for name, values in parser.data.items()}
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return client.post(url, data)


def form_errors(response) -> str:
    """The errors of an admin form that did not save (for assertion messages)."""
    if response.context is None or "adminform" not in response.context:
        return ""
    return str(response.context["adminform"].form.errors) + str(response.context.get("inline_admin_formsets", ""))
