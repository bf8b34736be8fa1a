"""Every admin list page runs as many queries for 200 rows as for 5 (no query per row)."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.admin.rows import make_rows

pytestmark = pytest.mark.django_db

SCREENS = sorted(admin.site._registry, key=lambda model: model._meta.label)


def list_page_queries(client, model) -> tuple[int, int]:
    """(queries, rows shown) for the model's list page, every row on one page."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, {"all": ""})
    assert response.status_code == 200, url
    return len(queries), len(response.context["cl"].result_list)


@pytest.mark.parametrize("viewer", ["support", "superuser"])
@pytest.mark.parametrize("model", SCREENS, ids=lambda model: model._meta.label)
def test_a_list_page_runs_as_many_queries_for_200_rows_as_for_5(request, model, viewer):
    client = request.getfixturevalue("support_client" if viewer == "support" else "admin_client")
    make_rows(model, 5)
    few, shown_few = list_page_queries(client, model)
    make_rows(model, 195)
    many, shown_many = list_page_queries(client, model)

    assert shown_many - shown_few == 195, "the page did not show every row"
    assert many == few, f"{model._meta.label}: {few} queries for {shown_few} rows, {many} for {shown_many}"
