from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.utils.functional import cached_property
from django.views.generic import FormView, TemplateView

from common.errors import ServiceError
from common.forms import add_service_error
from workspaces.models import Role
from workspaces.tenancy import WorkspaceViewMixin

from . import selectors, services
from .forms import DeleteClientForm, OAuthClientForm, ReplaceSecretForm
from .models import redirect_uri
from .providers import PROVIDERS


class ClientAdminMixin(WorkspaceViewMixin):
    required_role = Role.ADMIN

    @cached_property
    def client(self):
        client = selectors.oauth_client_get(workspace=self.workspace, client_id=self.kwargs["client_id"])
        if client is None:
            raise Http404("No such OAuth client.")
        return client

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if "client_id" in self.kwargs:
            context["client"] = self.client
        context["provider_defaults"] = {key: p.as_defaults() for key, p in PROVIDERS.items()}
        context["redirect_uri"] = redirect_uri()
        return context


class ClientListView(ClientAdminMixin, TemplateView):
    template_name = "oauthclients/list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["clients"] = selectors.oauth_clients_list(workspace=self.workspace).select_related("created_by")
        return context


class ClientCreateView(ClientAdminMixin, FormView):
    template_name = "oauthclients/form.html"
    form_class = OAuthClientForm

    def get_initial(self):
        return OAuthClientForm.initial_for(
            self.request.GET.get("type", "exact_online")
            if self.request.GET.get("type") in PROVIDERS
            else "exact_online"
        )

    def form_valid(self, form):
        try:
            client = services.oauth_client_create(workspace=self.workspace, actor=self.actor, **form.cleaned_data)
        except ServiceError as error:
            add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"OAuth client “{client.name}” registered. Copy the redirect URI into "
            "the provider's app if you have not yet.",
        )
        return redirect("oauthclient-detail", workspace_slug=self.workspace.slug, client_id=client.id)


class ClientDetailView(ClientAdminMixin, TemplateView):
    template_name = "oauthclients/detail.html"


class ClientEditView(ClientAdminMixin, FormView):
    template_name = "oauthclients/form.html"
    form_class = OAuthClientForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "editing": True}

    def get_initial(self):
        client = self.client
        return {field: getattr(client, field) for field in services.EDITABLE_FIELDS}

    def form_valid(self, form):
        client = self.client
        try:
            services.oauth_client_update(workspace=self.workspace, client=client, actor=self.actor, **form.cleaned_data)
        except ServiceError as error:
            add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, "Changes saved.")
        return redirect("oauthclient-detail", workspace_slug=self.workspace.slug, client_id=client.id)


class ClientSecretView(ClientAdminMixin, FormView):
    template_name = "oauthclients/secret.html"
    form_class = ReplaceSecretForm

    def form_valid(self, form):
        client = self.client
        secrets = {k: v for k, v in form.cleaned_data.items() if v}
        try:
            services.oauth_client_replace_secret(workspace=self.workspace, client=client, actor=self.actor, **secrets)
        except ServiceError as error:
            add_service_error(form, error)
            return self.form_invalid(form)
        messages.success(self.request, "Secret replaced. The old one is no longer stored.")
        return redirect("oauthclient-detail", workspace_slug=self.workspace.slug, client_id=client.id)


class ClientDeleteView(ClientAdminMixin, FormView):
    template_name = "oauthclients/delete.html"
    form_class = DeleteClientForm

    def form_valid(self, form):
        client = self.client
        try:
            revoked = services.oauth_client_delete(
                workspace=self.workspace,
                client=client,
                actor=self.actor,
                revoke_connections=form.cleaned_data["revoke_connections"],
            )
        except ServiceError as error:
            if error.code == "client_in_use" and "revoke_connections" in form.fields:
                form.add_error("revoke_connections", "Tick the box to confirm that these connections will be revoked.")
            else:
                add_service_error(form, error)
            return self.form_invalid(form)
        note = f" {revoked} connection(s) were revoked." if revoked else ""
        messages.success(self.request, f"OAuth client “{client.name}” deleted.{note}")
        return redirect("oauthclient-list", workspace_slug=self.workspace.slug)
