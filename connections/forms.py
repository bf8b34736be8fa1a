from django import forms

from oauthclients.models import OAuthClient
from oauthclients.selectors import oauth_clients_by_name


class ConnectionForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Which account this is, e.g. “Acme BV administration”.")
    oauth_client = forms.ModelChoiceField(queryset=OAuthClient.objects.none(), label="OAuth client", empty_label=None)

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["oauth_client"].queryset = oauth_clients_by_name(workspace=workspace)


class RenameForm(forms.Form):
    name = forms.CharField(max_length=100)
