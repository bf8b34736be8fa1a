"""A connection's support page and its actions, against the Exact Online emulator
(40 s tokens, 30 s window): what is wrong, since when, what the provider said,
what happened, and the buttons that act — audited as "Tokenkeeper support"."""

import pytest
from django.core import mail

from audit.models import AuditEvent
from audit.services import STAFF_LABEL, Actor
from connections import refresh
from connections.models import Connection, EventKind, Status
from connections.services import connection_mark_needs_reauth
from tests.admin.helpers import admin_url
from tests.factories import UserFactory
from tests.refresh.helpers import compressed_exact, connect, refreshes

pytestmark = [compressed_exact, pytest.mark.django_db]


@pytest.fixture
def failing(team, exact_client, exact):
    """Inside its refresh window, and the provider answered 503 to the last refresh."""
    connection = connect(exact_client, exact, name="Jansen administratie", owner=team.alice, remaining=20)
    exact.fail_next(1, status=503)
    assert refresh.refresh_forced(connection=connection).outcome == refresh.Outcome.FAILED
    return Connection.objects.get(pk=connection.pk)


@pytest.fixture
def fresh(team, exact_client, exact):
    """38 s left: its window opens in 8 s."""
    return connect(exact_client, exact, name="Fresh", owner=team.bob, remaining=38)


def act(client, connection, action: str):
    return client.post(
        admin_url(Connection, "change", connection.pk).replace("/change/", f"/act/{action}/"), follow=True
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_support_page_says_what_is_wrong_since_when_and_what_the_provider_said(support_client, failing):
    page = support_client.get(admin_url(Connection, "change", failing.pk))

    text = page.content.decode()
    diagnosis = page.context["diagnosis"]
    assert page.status_code == 200
    assert diagnosis.tone == "warning"
    assert diagnosis.headline.startswith("Refreshing is failing: 1 failed attempt(s) in a row.")
    assert diagnosis.since == failing.events.get(kind=EventKind.REFRESH_FAILED).created_at
    assert diagnosis.provider_answer.status == 503
    assert "The provider answered HTTP 503" in diagnosis.provider_answer.text
    assert failing.last_error in text and "What the provider said last" in text
    assert [e.kind for e in page.context["recent_events"]] == [EventKind.REFRESH_FAILED, EventKind.CREATED]
    assert [a["name"] for a in page.context["object_actions"]] == ["refresh_now", "pause", "mark_needs_reauth"]
    assert str(failing.access_token) not in text and str(failing.refresh_token) not in text
    assert f"/django-admin/audit/auditevent/?target={failing.id}" in text
    assert f"/django-admin/connections/connectionevent/?connection={failing.id}" in text


def test_refresh_now_by_support_refreshes_and_the_workspace_sees_tokenkeeper_support(
    support_client, support_user, failing, exact, team, api
):
    response = act(support_client, failing, "refresh_now")

    assert messages_of(response)[0].startswith("Refreshed: the new access token is valid until")
    assert Connection.objects.get(pk=failing.pk).status == Status.ACTIVE
    assert refreshes(exact, "ok") == 1
    [event] = AuditEvent.objects.filter(action="connection.refresh_forced")
    assert (event.actor, event.actor_label, event.by_staff, event.workspace) == (
        support_user,
        STAFF_LABEL,
        True,
        team.a,
    )
    log = api.as_user(team.alice).get("/api/v1/workspaces/acme/audit-events/").json()["results"]
    [seen] = [e for e in log if e["action"] == "connection.refresh_forced"]
    assert (seen["actor"], seen["ip_address"]) == (STAFF_LABEL, None)
    assert support_user.email not in str(log)


def test_refresh_now_before_the_window_says_when_it_will_happen(support_client, fresh, exact):
    response = act(support_client, fresh, "refresh_now")

    [message] = messages_of(response)
    assert message.startswith("Scheduled: Exact Online accepts a refresh only in the last 30 s before expiry")
    assert "it will happen at" in message
    assert refreshes(exact) == 0
    assert AuditEvent.objects.get(action="connection.refresh_requested").actor_label == STAFF_LABEL


def test_pause_and_resume_from_the_support_page(support_client, failing):
    paused = act(support_client, failing, "pause")
    page = support_client.get(admin_url(Connection, "change", failing.pk))
    resumed = act(support_client, failing, "resume")

    assert messages_of(paused) == ["Refreshing of “Jansen administratie” is paused."]
    assert page.context["diagnosis"].headline.startswith("Refreshing is paused by Tokenkeeper support")
    assert [a["name"] for a in page.context["object_actions"]] == ["resume"]
    assert messages_of(resumed)[0].startswith("Refreshing resumed; next refresh due at")
    assert Connection.objects.get(pk=failing.pk).refresh_due_at is not None


def test_resending_the_reauth_email_and_marking_for_reauth(
    support_client, failing, team, django_capture_on_commit_callbacks
):
    marked = act(support_client, failing, "mark_needs_reauth")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        resent = act(support_client, failing, "resend_reauth_email")

    assert "marked for re-authorization" in messages_of(marked)[0]
    assert messages_of(resent) == ["Re-authorization e-mail sent again to 1 people."]
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    assert "needs re-authorization" in mail.outbox[0].subject
    assert list(failing.events.values_list("kind", flat=True)[:2]) == [
        EventKind.REAUTH_EMAIL_SENT,
        EventKind.NEEDS_REAUTH,
    ]
    assert (
        "Marked for re-authorization by Tokenkeeper support." in failing.events.get(kind=EventKind.NEEDS_REAUTH).detail
    )
    actions = AuditEvent.objects.filter(by_staff=True).values_list("action", flat=True).order_by("created_at")
    assert list(actions) == ["connection.marked_needs_reauth", "connection.reauth_email_resent"]


def test_an_action_that_does_not_apply_is_refused_with_the_reason(support_client, failing, team):
    connection_mark_needs_reauth(workspace=team.a, connection=failing, actor=Actor(user=team.alice))

    refused = act(support_client, failing, "refresh_now")

    assert refused.status_code == 404  # the button is not offered for a connection that needs re-authorization


def test_staff_without_the_support_permission_cannot_act(client, failing, exact):
    client.force_login(UserFactory(email="intern@tokenkeeper.example", is_staff=True))

    response = act(client, failing, "refresh_now")

    assert response.status_code == 403
    assert refreshes(exact) == 1  # only the failed attempt of the fixture


def test_actions_are_posts(support_client, failing):
    url = admin_url(Connection, "change", failing.pk).replace("/change/", "/act/refresh_now/")
    assert support_client.get(url).status_code == 405


def test_bulk_refresh_now_from_the_list(support_client, failing, fresh, exact):
    response = support_client.post(
        admin_url(Connection, "changelist"),
        {"action": "refresh_now_selected", "_selected_action": [failing.pk, fresh.pk]},
        follow=True,
    )

    texts = messages_of(response)
    assert any(t.startswith("Jansen administratie: Refreshed") for t in texts)
    assert any(t.startswith("Fresh: Scheduled") for t in texts)


def test_only_superusers_see_which_staff_member_acted(support_client, admin_client, support_user, failing):
    act(support_client, failing, "pause")
    event = AuditEvent.objects.get(action="connection.refresh_paused")
    urls = [f"{admin_url(AuditEvent, 'changelist')}?target={failing.pk}", admin_url(AuditEvent, "change", event.pk)]

    for url in urls:
        as_support = support_client.get(url).content.decode()
        as_superuser = admin_client.get(url).content.decode()
        assert STAFF_LABEL in as_support and support_user.email not in as_support, url
        assert support_user.email in as_superuser, url
    assert (
        support_client.get(admin_url(AuditEvent, "changelist"), {"q": support_user.email, "target": failing.pk})
        .context["cl"]
        .result_count
        == 0
    )
    assert (
        admin_client.get(admin_url(AuditEvent, "changelist"), {"q": support_user.email, "target": failing.pk})
        .context["cl"]
        .result_count
        == 1
    )


def test_only_superusers_read_an_objects_change_history(support_client, admin_client, team):
    url = admin_url(type(team.a), "history", team.a.pk)
    page = admin_url(type(team.a), "change", team.a.pk)

    assert support_client.get(url).status_code == 403
    assert admin_client.get(url).status_code == 200
    assert 'class="historylink"' not in support_client.get(page).content.decode()
    assert 'class="historylink"' in admin_client.get(page).content.decode()
