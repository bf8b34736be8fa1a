"""Support screen for OAuth clients: find one by workspace, name or client id; never a secret.

Support staff view. Superusers may change a client's settings and delete an
unused client, through the same services (and checks: SSRF, provider rules)
as the product's own screens, audited as "Tokenkeeper support". Nobody adds a
client or enters a secret here: secrets are never editable in the admin.
"""

from django import forms
from django.contrib import admin
from django.db import models

from audit.services import Actor
from audit.staff import AuditedAdmin
from common.admin import WorkspaceFilter, change_link, changelist_link
from common.errors import ServiceError

from . import services
from .models import OAuthClient
from .selectors import oauth_client_connections_in_use


def _formfield(field, **kwargs):
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"  # Django 6.0's default, without the warning
    return field.formfield(**kwargs)


class OAuthClientForm(forms.ModelForm):
    """The product's validation, field by field, before anything is saved."""

    class Meta:
        model = OAuthClient
        fields = list(services.EDITABLE_FIELDS)
        formfield_callback = _formfield

    def clean(self):
        data = super().clean()
        try:
            services.oauth_client_check_update(workspace=self.instance.workspace, client=self.instance, **data)
        except ServiceError as error:
            for field, problems in (error.errors or {None: [error.message]}).items():
                for problem in problems:
                    self.add_error(field if field in self.fields else None, problem)
        return data


@admin.register(OAuthClient)
class OAuthClientAdmin(AuditedAdmin):
    audit_name = "oauth_client"
    form = OAuthClientForm
    secret_fields = ("client_secret", "webhook_secret")
    list_display = ["name", "workspace_link", "provider", "site", "client_id", "created_at", "connections_link"]
    list_filter = [WorkspaceFilter, "provider"]
    search_fields = ["name", "client_id", "workspace__name", "workspace__slug"]
    list_select_related = ["workspace"]
    readonly_fields = ["workspace", "provider", "created_by", "created_at", "updated_at", "redirect_uri"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # Django 6.0's default, without the warning

    def has_add_permission(self, request) -> bool:
        return False  # a client needs its secret, which is never entered here: the product's screen registers it

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and oauth_client_connections_in_use(client=obj):
            return False  # the product's rule: not while connections use it (disconnect them first)
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        # Only revoked connections (tokens erased) can go with it; counted, not listed.
        revoked = sum(obj.connections.count() for obj in objs)
        return [str(obj) for obj in objs], {"Revoked connections": revoked}, set(), []

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, each through the service's checks
        return actions

    def save_model(self, request, obj, form, change):
        # The service audits the change ("oauth_client.updated", in the client's workspace).
        fields = {name: form.cleaned_data[name] for name in form.changed_data}
        services.oauth_client_update(
            workspace=obj.workspace, client=obj, actor=Actor.staff_from_request(request), **fields
        )
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        services.oauth_client_delete(workspace=obj.workspace, client=obj, actor=Actor.staff_from_request(request))

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_link(self, obj) -> str:
        return change_link(obj.workspace)

    @admin.display(description="Connections")
    def connections_link(self, obj) -> str:
        return changelist_link("connections", "connections", "connection", client=str(obj.id))
