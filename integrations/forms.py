from django import forms

from .exact_subscriptions import KNOWN_TOPICS
from .models import EventType


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(
        max_length=500, label="URL", help_text="https:// to a public host, e.g. https://example.com/hooks/tokenkeeper."
    )
    description = forms.CharField(max_length=200, required=False, help_text="What receives them, e.g. “ERP sync”.")
    event_types = forms.MultipleChoiceField(
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=list(EventType.values),
        label="Event types",
    )


class WebhookEndpointEditForm(WebhookEndpointForm):
    enabled = forms.BooleanField(required=False, help_text="Disabled endpoints get nothing until enabled again.")


class ExactTopicsForm(forms.Form):
    topics = forms.MultipleChoiceField(
        choices=[(topic, topic) for topic in KNOWN_TOPICS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Topics",
    )
    other_topics = forms.CharField(
        max_length=600,
        required=False,
        label="Other topics",
        help_text="Any other topic Exact Online offers (webhooks/WebhookTopics), comma-separated.",
    )

    def chosen(self) -> list[str]:
        other = [t.strip() for t in self.cleaned_data.get("other_topics", "").split(",") if t.strip()]
        return [*self.cleaned_data.get("topics", []), *other]
