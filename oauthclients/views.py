from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.generic import FormView, TemplateView

from common.crypto import decrypt, encrypt
from common.errors import ServiceError
from common.forms import add_service_error
from workspaces.models import Role
from workspaces.tenancy import WorkspaceViewMixin

from . import selectors, services
from .forms import DeleteClientForm, OAuthClientForm, ReplaceSecretForm, expiry_help
from .models import redirect_uri
from .providers import PROVIDERS

SECRET_FIELDS = ("client_secret", "webhook_secret")
KEPT_SECRETS_SESSION = "oauthclient_form_secrets"
KEPT_SECRETS_FOR = timedelta(minutes=15)
URL_FIELDS = ("authorization_url", "token_url", "api_base_url", "identity_url")
INSECURE_HINT = (
    "Running Tokenkeeper on your own machine against a development server or an emulator on http:// or "
    "localhost? Start Tokenkeeper with OAUTH_ALLOW_INSECURE_URLS=true (development only; production refuses it)."
)


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
        context["provider_defaults"] = {
            key: {**p.as_defaults(), "help": expiry_help(p)} for key, p in PROVIDERS.items()
        }
        context["redirect_uri"] = redirect_uri()
        context["insecure_hint_text"] = INSECURE_HINT
        return context


def _insecure_url_refused(form) -> bool:
    """Whether a URL was refused for a reason that OAUTH_ALLOW_INSECURE_URLS lifts (http, loopback, private)."""
    if settings.PRODUCTION or settings.OAUTH_ALLOW_INSECURE_URLS:
        return False
    words = ("https://", "public host", "private, loopback")
    return any(any(w in str(e) for w in words) for f in URL_FIELDS for e in form.errors.get(f, []))


class ClientListView(ClientAdminMixin, TemplateView):
    template_name = "oauthclients/list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["clients"] = selectors.oauth_clients_list(workspace=self.workspace).select_related("created_by")
        return context


class ClientCreateView(ClientAdminMixin, FormView):
    """Register a client. Secrets typed in an attempt that fails validation are kept,
    encrypted, in the session for the next attempt (never put back in the page)."""

    template_name = "oauthclients/form.html"
    form_class = OAuthClientForm

    def get(self, request, *args, **kwargs):
        request.session.pop(KEPT_SECRETS_SESSION, None)  # a fresh form starts without kept secrets
        return super().get(request, *args, **kwargs)

    def get_initial(self):
        return OAuthClientForm.initial_for(
            self.request.GET.get("type", "exact_online")
            if self.request.GET.get("type") in PROVIDERS
            else "exact_online"
        )

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        if "data" in kwargs:
            data, kept = kwargs["data"].copy(), self._kept_secrets()
            for name, value in kept.items():
                if not data.get(name):
                    data[name] = value
            kwargs.update(data=data, provider=data.get("provider", ""), kept=tuple(kept))
        return kwargs

    def form_valid(self, form):
        try:
            client = services.oauth_client_create(workspace=self.workspace, actor=self.actor, **form.cleaned_data)
        except ServiceError as error:
            add_service_error(form, error)
            return self.form_invalid(form)
        self.request.session.pop(KEPT_SECRETS_SESSION, None)
        messages.success(
            self.request,
            f"OAuth client “{client.name}” registered. Copy the redirect URI into "
            "the provider's app if you have not yet.",
        )
        return redirect("oauthclient-detail", workspace_slug=self.workspace.slug, client_id=client.id)

    def form_invalid(self, form):
        typed = {name: form.data.get(name, "") for name in SECRET_FIELDS if form.data.get(name)}
        if typed:
            self.request.session[KEPT_SECRETS_SESSION] = {
                "workspace": str(self.workspace.id),
                "at": timezone.now().isoformat(),
                "secrets": {name: encrypt(value) for name, value in typed.items()},
            }
            form.mark_kept(tuple(typed))
        return self.render_to_response(self.get_context_data(form=form, insecure_hint=_insecure_url_refused(form)))

    def _kept_secrets(self) -> dict[str, str]:
        stash = self.request.session.get(KEPT_SECRETS_SESSION)
        if not stash or stash.get("workspace") != str(self.workspace.id):
            return {}
        if timezone.now() - datetime.fromisoformat(stash["at"]) > KEPT_SECRETS_FOR:
            return {}
        return {name: decrypt(value) for name, value in stash["secrets"].items()}


class ClientDetailView(ClientAdminMixin, TemplateView):
    template_name = "oauthclients/detail.html"


class ClientEditView(ClientAdminMixin, FormView):
    template_name = "oauthclients/form.html"
    form_class = OAuthClientForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "editing": True, "provider": self.client.provider}

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form, insecure_hint=_insecure_url_refused(form)))

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
