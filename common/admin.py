"""Django admin building blocks for support staff.

Every registered admin is read-only (``ReadOnlyAdmin``) or audits every change
(``audit.staff.AuditedAdmin``); ``tests/security/test_admin_audit.py`` checks
that rule over ``admin.site``. Both take ``SupportAdminMixin``, which gives a
screen what support needs and keeps it cheap on large tables:

- ``secret_fields``: never in a form, a list or a page; the page shows only
  whether each is set (``secrets_status``).
- ``WorkspaceFilter``: ``?workspace=<slug>`` — every screen of a workspace's
  rows filters the same way, so links between screens are one parameter.
- ``EstimatedCountPaginator``: an unfiltered list of a table with millions of
  rows does not count them row by row.

A new screen is one small class (docs/support.md shows one).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from .crypto import EncryptedTextField
from .errors import ServiceError

# Above this many rows (PostgreSQL's estimate) an unfiltered list shows the estimate.
ESTIMATE_ABOVE = 100_000


class EstimatedCountPaginator(Paginator):
    """Counts exactly, except an unfiltered PostgreSQL table that is large: there
    ``COUNT(*)`` reads every row (seconds for tens of millions of events), while
    the planner's estimate (``pg_class.reltuples``) is free and close enough to
    page through."""

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where and not query.distinct:
            estimate = _estimated_rows(self.object_list.model, self.object_list.db)
            if estimate > ESTIMATE_ABOVE:
                return estimate
        return super().count


def _estimated_rows(model, using: str) -> int:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


class InputFilter(admin.SimpleListFilter):
    """A list filter typed into a box (``?<parameter_name>=value``) instead of a list
    of every possible value, which for workspaces or connections would be thousands."""

    template = "admin/input_filter.html"
    lookup: str = ""  # the ORM lookup the typed value is matched with

    def lookups(self, request, model_admin):
        return []

    def has_output(self) -> bool:
        return True

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        return queryset.filter(**{self.lookup: self.clean(value)}) if value else queryset

    def clean(self, value: str):
        return value

    def choices(self, changelist):
        # One "choice" for the template: the box, and the other parameters to keep when it is submitted.
        yield {
            "parameter": self.parameter_name,
            "value": self.value() or "",
            "others": [(key, value) for key, value in changelist.params.items() if key != self.parameter_name],
        }


class WorkspaceFilter(InputFilter):
    title = "workspace (slug)"
    parameter_name = "workspace"
    lookup = "workspace__slug"


class UUIDInputFilter(InputFilter):
    """A filter on an id: a value that is not a UUID matches nothing (not an error page)."""

    def clean(self, value: str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return uuid.UUID(int=0)


def change_link(obj, text: str | None = None) -> str:
    """A link to ``obj``'s admin page (empty for None)."""
    if obj is None:
        return "–"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def changelist_url(app_label: str, model_name: str, **params) -> str:
    """The admin list of a model, filtered: ``changelist_url("connections", "connection", workspace="acme")``."""
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def changelist_link(text: str, app_label: str, model_name: str, **params) -> str:
    return format_html('<a href="{}">{}</a>', changelist_url(app_label, model_name, **params), text)


def _encrypted_fields_of(model, paths) -> list[str]:
    """``path__field`` for every encrypted field of the models at the end of these relation paths."""
    found = []
    for relation in paths:
        related = model
        for part in relation.split("__"):
            related = related._meta.get_field(part).related_model
        found += [f"{relation}__{f.name}" for f in related._meta.fields if isinstance(f, EncryptedTextField)]
    return found


class SupportAdminMixin:
    """What every support screen shares (see the module docstring)."""

    secret_fields: tuple[str, ...] = ()
    paginator = EstimatedCountPaginator
    show_full_result_count = False  # one COUNT(*) less per list page
    list_per_page = 50
    list_max_show_all = 500

    def get_queryset(self, request):
        """Secrets are not even read (nor decrypted): a flag per secret says whether one is set
        (``secrets_status``), and the parents a list shows come without theirs."""
        queryset = super().get_queryset(request)
        # The list's parents are joined here (Django's list then joins nothing more), so
        # their encrypted columns can be left out too.
        related = self.get_list_select_related(request)
        related = list(related) if isinstance(related, list | tuple) else []
        if related:
            queryset = queryset.select_related(*related)
        hidden = [*self.secret_fields, *_encrypted_fields_of(self.model, related)]
        flags = {
            f"{name}_is_set": ExpressionWrapper(~Q(**{name: ""}), output_field=BooleanField())
            for name in self.secret_fields
        }
        return queryset.defer(*hidden).annotate(**flags) if hidden else queryset

    def get_exclude(self, request, obj=None):
        return [*(super().get_exclude(request, obj) or ()), *self.secret_fields]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if self.secret_fields and "secrets_status" not in fields:
            fields.append("secrets_status")
        return fields

    def get_fields(self, request, obj=None):
        return [name for name in super().get_fields(request, obj) if name not in self.secret_fields]

    def get_search_fields(self, request):
        return [name for name in super().get_search_fields(request) if name.split("__")[-1] not in self.secret_fields]

    def history_view(self, request, object_id, extra_context=None):
        # Django's change history names the staff member who made each change:
        # who it was is for superusers only (support sees "Tokenkeeper support").
        if not request.user.is_superuser:
            raise PermissionDenied
        return super().history_view(request, object_id, extra_context)

    @admin.display(description="Secrets")
    def secrets_status(self, obj) -> str:
        """Whether each secret is set; never the value (nor a part of it)."""
        if obj is None or obj.pk is None:
            return "–"
        parts = []
        for name in self.secret_fields:
            label = obj._meta.get_field(name).verbose_name
            is_set = getattr(obj, f"{name}_is_set", None)
            if is_set is None:  # an object not read through get_queryset
                is_set = bool(getattr(obj, name))
            parts.append(f"{label}: {'set' if is_set else 'not set'}")
        return "; ".join(parts) + " (never shown)"


@dataclass(frozen=True)
class ObjectAction:
    """A button on an object's admin page: ``run(request, obj)`` returns the message to show."""

    name: str
    label: str
    help: str
    run: Callable
    permission: str  # "support" asks the admin's has_support_permission(request)
    applies: Callable = lambda obj: True  # shown for this object?


class ObjectActionsMixin:
    """Support actions as buttons on an object's page, each a POST (with CSRF) to
    ``<id>/act/<name>/`` that checks the permission, runs, says what happened
    and comes back. A ``ServiceError`` (the rule that refused) shows as a warning.

    Subclasses list ``object_actions()`` and may give the page a panel above
    the fields with ``support_panel_template`` and ``support_panel_context``.
    """

    change_form_template = "admin/support_change_form.html"
    support_panel_template = ""

    def object_actions(self) -> list[ObjectAction]:
        return []

    def support_panel_context(self, request, obj) -> dict:
        return {}

    def _allowed(self, request, action: ObjectAction) -> bool:
        return getattr(self, f"has_{action.permission}_permission")(request)

    def get_urls(self):
        opts = self.model._meta
        view = self.admin_site.admin_view(self.object_action_view)
        name = f"{opts.app_label}_{opts.model_name}_act"
        return [path("<path:object_id>/act/<str:action>/", view, name=name), *super().get_urls()]

    def object_action_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        chosen = next((a for a in self.object_actions() if a.name == action), None)
        if chosen is None:
            raise Http404("No such action.")
        if not self._allowed(request, chosen):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None or not chosen.applies(obj):
            raise Http404("No such object, or the action does not apply to it.")
        try:
            self.message_user(request, chosen.run(request, obj), messages.SUCCESS)
        except ServiceError as error:
            self.message_user(request, error.message, messages.WARNING)
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            opts = self.model._meta
            context["object_actions"] = [
                {
                    "label": action.label,
                    "help": action.help,
                    "name": action.name,
                    "url": reverse(f"admin:{opts.app_label}_{opts.model_name}_act", args=[obj.pk, action.name]),
                }
                for action in self.object_actions()
                if self._allowed(request, action) and action.applies(obj)
            ]
            context["support_panel_template"] = self.support_panel_template
            context.update(self.support_panel_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)


class ReadOnlyAdmin(SupportAdminMixin, admin.ModelAdmin):
    """Staff can look, not change: the product's own screens (or a support action) make changes."""

    def get_readonly_fields(self, request, obj=None):
        # Every field a screen lists is shown as text (a form field for one the model
        # does not let edit, such as a UUID primary key, would not even build).
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly + [name for name in self.fields or () if name not in readonly]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
