"""``common.compiled.CompiledQuery``: the SQL compiled once, the answers the ORM would give."""

import threading
import uuid

import pytest

from common.compiled import CompiledQuery
from connections.models import Connection
from connections.selectors import connection_for_proxy, connection_for_token
from tests.proxy.helpers import exact_connection_with_division

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection(team, exact_client, exact):
    return exact_connection_with_division(exact_client, exact, owner=team.alice)


def test_a_compiled_read_gives_what_the_orm_gives(team, connection):
    found = connection_for_token(workspace=team.a, connection_id=connection.id)

    assert found.pk == connection.pk
    assert str(found.access_token) == str(connection.access_token)  # decrypted by the field's converter
    assert found.access_token_expires_at == connection.access_token_expires_at
    assert found.status == connection.status


def test_the_workspace_filter_is_in_the_compiled_sql(team, connection):
    assert connection_for_token(workspace=team.b, connection_id=connection.id) is None
    assert connection_for_proxy(workspace=team.b, connection_id=connection.id) is None
    assert connection_for_token(workspace=team.a, connection_id=uuid.uuid4()) is None


def test_select_related_comes_from_the_same_query(team, connection, django_assert_num_queries):
    connection_for_proxy(workspace=team.a, connection_id=connection.id)  # compiled for this thread

    with django_assert_num_queries(1):
        found = connection_for_proxy(workspace=team.a, connection_id=connection.id)
        client = found.oauth_client
        assert (client.pk, client.client_id, client.api_base_url) == (
            connection.oauth_client.pk,
            connection.oauth_client.client_id,
            connection.oauth_client.api_base_url,
        )
        assert found.account_division == connection.account_division

    with django_assert_num_queries(1):  # a field left out of the read loads on first access, as with only()
        assert str(client.client_secret) == str(connection.oauth_client.client_secret)


def test_each_thread_compiles_its_own(team, connection):
    query = CompiledQuery(
        lambda connection_id: Connection.objects.only("id").filter(id=connection_id)[:1], "connection_id"
    )
    query.first(connection_id=connection.id)
    seen = []

    def other():
        seen.append(getattr(query._local, "compiled", None))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()

    assert seen == [None]
    assert query._local.compiled.sql


def test_a_queryset_with_annotations_is_refused():
    from django.db.models import Value

    query = CompiledQuery(
        lambda connection_id: Connection.objects.annotate(x=Value(1)).filter(id=connection_id), "connection_id"
    )

    with pytest.raises(ValueError, match="annotations"):
        query.first(connection_id=uuid.uuid4())
