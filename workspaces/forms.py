from django import forms

from .models import Role, Scope


class WorkspaceCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Your team or company, e.g. “Acme Finance”.")
    slug = forms.CharField(
        max_length=50,
        required=False,
        label="Slug (optional)",
        help_text="Used in URLs and the API. Lower-case letters, digits and hyphens; made from the name if empty.",
    )


class WorkspaceRenameForm(forms.Form):
    name = forms.CharField(max_length=100)


class InvitationForm(forms.Form):
    email = forms.CharField(max_length=254, label="E-mail address")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses this key, e.g. “Nightly ETL”.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Scope.READ],
        help_text="read: view objects; write: change OAuth clients and connections; tokens: fetch access tokens.",
    )
