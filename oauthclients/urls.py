from django.urls import path

from . import views

urlpatterns = [
    path("", views.ClientListView.as_view(), name="oauthclient-list"),
    path("new/", views.ClientCreateView.as_view(), name="oauthclient-create"),
    path("<uuid:client_id>/", views.ClientDetailView.as_view(), name="oauthclient-detail"),
    path("<uuid:client_id>/edit/", views.ClientEditView.as_view(), name="oauthclient-edit"),
    path("<uuid:client_id>/secret/", views.ClientSecretView.as_view(), name="oauthclient-secret"),
    path("<uuid:client_id>/delete/", views.ClientDeleteView.as_view(), name="oauthclient-delete"),
]
