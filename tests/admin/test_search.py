"""Support finds a connection by what the customer says, filters the lists, and
follows links between a workspace, its clients and connections, and a
connection's events and audit trail."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection as db
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from connections.models import Connection, ConnectionEvent, ConnectionSearchText, EventKind, Status
from connections.selectors import connections_search
from connections.services import connection_create, connection_pause, connection_rename
from tests.admin.helpers import admin_url
from tests.connections.helpers import exact_consent, finish_flow, start_flow

pytestmark = pytest.mark.django_db

CHANGELIST = "/django-admin/connections/connection/"


def found(browser, **params) -> list[str]:
    response = browser.get(CHANGELIST, params)
    assert response.status_code == 200
    return sorted(c.name for c in response.context["cl"].result_list)


@pytest.fixture
def connections(team, acme_client, globex_client):
    """Two Exact connections in Acme (divisions 654321 and 123456), one generic in Globex."""

    def make(workspace, client, name, owner, **fields):
        made = connection_create(
            workspace=workspace, oauth_client=client, name=name, owner=owner, actor=Actor(user=owner)
        )
        Connection.objects.filter(pk=made.pk).update(**fields)
        return Connection.objects.get(pk=made.pk)

    return {
        "jansen": make(
            team.a,
            acme_client,
            "Jansen administratie",
            team.alice,
            status=Status.REFRESH_FAILING,
            account_name="Jan de Vries",
            account_email="jan@example.nl",
            account_division=654321,
            account_details={"Division": 654321},
        ),
        "bakker": make(
            team.a,
            acme_client,
            "Bakker boekhouding",
            team.bob,
            status=Status.ACTIVE,
            account_name="Piet Bakker",
            account_division=123456,
            account_details={"Division": 123456},
        ),
        "crm": make(
            team.b, globex_client, "Globex CRM", team.charlie, status=Status.NEEDS_REAUTH, account_name="Carla"
        ),
    }


def test_the_flow_stores_the_exact_division_and_support_finds_it_by_number(
    people, exact, exact_connection, support_client
):
    finish_flow(people.alice, exact_consent(start_flow(people.alice, exact_connection), division="654321"))

    connection = Connection.objects.get(pk=exact_connection.pk)
    assert connection.account_division == connection.account_details["Division"] == 654321
    assert found(support_client, q="654321") == ["Jansen administratie"]
    assert found(support_client, q="123456") == []  # Jan's other division: not the one connected


def test_connections_made_before_the_division_column_get_it_from_the_backfill(connections):
    Connection.objects.update(account_division=None)
    Connection.objects.filter(pk=connections["crm"].pk).update(account_details={"Division": "not a number"})
    migration = importlib.import_module("connections.migrations.0005_backfill_account_division")

    migration.backfill(apps, None)
    migration.backfill(apps, None)  # again: nothing left to do, nothing changes

    divisions = dict(Connection.objects.values_list("name", "account_division"))
    assert divisions == {"Jansen administratie": 654321, "Bakker boekhouding": 123456, "Globex CRM": None}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("654321", ["Jansen administratie"]),  # an Exact division number
        (" 123456 ", ["Bakker boekhouding"]),
        ("999999", []),
        ("acme", ["Bakker boekhouding", "Jansen administratie"]),  # workspace slug
        ("Globex", ["Globex CRM"]),  # workspace name (and client name)
        ("acme-exact-id", ["Bakker boekhouding", "Jansen administratie"]),  # client id
        ("bob@example.com", ["Bakker boekhouding"]),  # the owner's e-mail
        ("administratie", ["Jansen administratie"]),  # the connection's name
        ("Piet", ["Bakker boekhouding"]),  # the account name
        ("jan@example.nl", ["Jansen administratie"]),  # the account e-mail
    ],
)
def test_support_finds_connections_by_what_a_customer_says(support_client, connections, term, expected):
    assert found(support_client, q=term) == expected


def test_support_finds_a_connection_by_its_id_or_its_workspaces_or_clients(
    support_client, connections, team, globex_client
):
    assert found(support_client, q=str(connections["jansen"].id)) == ["Jansen administratie"]
    assert found(support_client, q=str(team.b.id)) == ["Globex CRM"]
    assert found(support_client, q=str(globex_client.id)) == ["Globex CRM"]


@pytest.mark.postgres
def test_the_division_search_uses_its_index(connections):
    query = connections_search(Connection.objects.all(), "654321")
    with db.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # with three rows the planner would rather scan them
        plan = query.explain()

    assert "connection_account_division" in plan
    assert str(query.query).split(" WHERE ")[1].startswith('"connections_connection"."account_division" = 654321 ORDER')


def test_the_lists_filter_by_status_provider_workspace_client_and_owner(
    support_client, connections, team, acme_client, support_user
):
    connection_pause(workspace=team.a, connection=connections["bakker"], actor=Actor(user=support_user, staff=True))

    assert found(support_client, status="refresh_failing") == ["Jansen administratie"]
    assert found(support_client, status="paused") == ["Bakker boekhouding"]
    assert found(support_client, oauth_client__provider__exact="generic") == ["Globex CRM"]
    assert found(support_client, workspace="globex") == ["Globex CRM"]
    assert found(support_client, client=str(acme_client.id)) == ["Bakker boekhouding", "Jansen administratie"]
    assert found(support_client, client="not-a-uuid") == []
    assert found(support_client, owner="ALICE@example.com") == ["Jansen administratie"]
    assert found(support_client, workspace="acme", q="654321") == ["Jansen administratie"]


def test_a_workspace_links_to_each_screen_of_its_rows(support_client, connections, team):
    page = support_client.get(admin_url(type(team.a), "change", team.a.pk)).content.decode()

    for path in (
        "/django-admin/connections/connection/?workspace=acme",
        "/django-admin/oauthclients/oauthclient/?workspace=acme",
        "/django-admin/workspaces/membership/?workspace=acme",
        "/django-admin/workspaces/invitation/?workspace=acme",
        "/django-admin/workspaces/apikey/?workspace=acme",
        "/django-admin/audit/auditevent/?workspace=acme",
    ):
        assert f'href="{path}"' in page, path
        listing = support_client.get(path)
        assert listing.status_code == 200, path
        assert all(row.workspace_id == team.a.id for row in listing.context["cl"].result_list), path


def test_a_connection_links_to_its_events_and_audit_trail(support_client, connections):
    jansen, bakker = connections["jansen"], connections["bakker"]
    ConnectionEvent.objects.create(connection=bakker, kind=EventKind.REFRESHED, detail="Refreshed.")

    events = support_client.get("/django-admin/connections/connectionevent/", {"connection": str(jansen.id)})
    trail = support_client.get("/django-admin/audit/auditevent/", {"target": str(jansen.id)})
    old = support_client.get(
        "/django-admin/connections/connectionevent/",
        {"created_at__gte": (timezone.now() - timedelta(days=7)).isoformat()},
    )

    assert {e.connection_id for e in events.context["cl"].result_list} == {jansen.id}
    assert [e.action for e in trail.context["cl"].result_list] == ["connection.created"]
    assert trail.context["cl"].result_list[0].target_id == str(jansen.id)
    assert old.status_code == 200
    assert AuditEvent.objects.filter(target_id=str(bakker.id)).exists()


def search_text(connection) -> str:
    return ConnectionSearchText.objects.get(connection_id=connection.pk).text


def test_the_search_text_follows_names_and_accounts_and_goes_with_the_connection(connections, team, support_client):
    jansen = connections["jansen"]
    assert search_text(jansen) == "jansen administratie jan de vries jan@example.nl"

    connection_rename(workspace=team.a, connection=jansen, name="Jansen & Zn", actor=Actor(user=team.alice))
    Connection.objects.filter(pk=jansen.pk).update(account_name="Johanna Jansen")

    assert search_text(jansen) == "jansen & zn johanna jansen jan@example.nl"
    assert found(support_client, q="johanna") == ["Jansen & Zn"]
    Connection.objects.filter(pk=jansen.pk).delete()
    assert not ConnectionSearchText.objects.filter(connection_id=jansen.pk).exists()


@pytest.mark.postgres
def test_the_refresh_engines_writes_never_touch_the_search_text(connections):
    jansen = connections["jansen"]

    def writes() -> tuple:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables WHERE relname = %s",
                [ConnectionSearchText._meta.db_table],
            )
            return cursor.fetchone()

    before = writes()
    jansen.status, jansen.refresh_failures, jansen.last_error = Status.REFRESH_FAILING, 3, "HTTP 503"
    jansen.save()  # a full save, as refresh._fail does: every column in the UPDATE
    Connection.objects.filter(pk=jansen.pk).update(refresh_due_at=timezone.now())  # as a refresh does

    assert writes() == before


@pytest.mark.postgres
def test_the_text_search_uses_its_trigram_index(connections):
    query = connections_search(Connection.objects.all(), "administratie")
    with db.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()

    assert "connection_search_trgm" in plan
