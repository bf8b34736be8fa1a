from django import forms

from oauthclients.models import OAuthClient


class ConnectionForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Which account this is, e.g. “Acme BV administration”.")
    oauth_client = forms.ModelChoiceField(queryset=OAuthClient.objects.none(), label="OAuth client", empty_label=None)

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["oauth_client"].queryset = OAuthClient.objects.filter(workspace=workspace).order_by("name")


class RenameForm(forms.Form):
    name = forms.CharField(max_length=100)
