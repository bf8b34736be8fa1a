"""Views of the stand-alone DOT peer: a userinfo-ish endpoint and test controls."""

import hmac
import json
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model
from oauth2_provider.views.generic import ProtectedResourceView


class MeView(ProtectedResourceView):
    """``GET /api/me`` with ``Authorization: Bearer <token>``."""

    def get(self, request, *args, **kwargs):
        user = request.resource_owner
        return JsonResponse({"sub": str(user.pk), "username": user.get_username(), "email": user.email})

    def unauthenticated_response(self, request, oauthlib_request=None):
        # Stock ProtectedResourceView answers a bare 403; RFC 6750 says 401.
        response = JsonResponse({"error": "invalid_token"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="dot-peer", error="invalid_token"'
        return response


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


def _control(view):
    """Guard test-control endpoints with the shared secret from the helper."""

    @csrf_exempt
    def wrapper(request):
        token = settings.DOT_PEER_CONTROL_TOKEN
        given = request.headers.get("X-Peer-Control", "")
        if not token or not hmac.compare_digest(token, given):
            return JsonResponse({"error": "forbidden"}, status=403)
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"error": "bad json"}, status=400)
        return JsonResponse(view(payload))

    return wrapper


@_control
def control_user(payload):
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=payload["username"])
    user.email = payload.get("email", user.email)
    if payload.get("password") is not None:
        user.set_password(payload["password"])
    user.save()
    return {"id": user.pk, "username": user.username, "email": user.email}


@_control
def control_app(payload):
    Application = get_application_model()
    redirect_uris = payload.get("redirect_uris") or []
    if isinstance(redirect_uris, str):
        redirect_uris = redirect_uris.split()
    client_id = payload["client_id"]
    plaintext_secret = payload["client_secret"]
    # DOT 2+/3 hashes client secrets on save (hash_client_secret=True): the
    # plaintext must be handed over here, it cannot be read back later.
    Application.objects.filter(client_id=client_id).delete()
    app = Application.objects.create(
        name=payload.get("name") or "Tokenkeeper",
        client_id=client_id,
        client_secret=plaintext_secret,
        client_type=payload.get("client_type") or Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(redirect_uris),
        skip_authorization=bool(payload.get("skip_authorization", False)),
        algorithm=Application.NO_ALGORITHM,
        hash_client_secret=True,
    )
    return {"id": app.pk, "client_id": app.client_id, "client_secret": plaintext_secret}


@_control
def control_expire_access_tokens(payload):
    """Expire access tokens now (all, or the one given as ``token``)."""
    AccessToken = get_access_token_model()
    qs = AccessToken.objects.all()
    if payload.get("token"):
        qs = qs.filter(token=payload["token"])
    n = qs.update(expires=timezone.now() - timedelta(seconds=1))
    return {"expired": n}


@_control
def control_revoke_all(payload):
    AccessToken = get_access_token_model()
    RefreshToken = get_refresh_token_model()
    n = 0
    for rt in RefreshToken.objects.filter(revoked__isnull=True):
        rt.revoke()
        n += 1
    AccessToken.objects.all().delete()
    return {"revoked_refresh_tokens": n}


@_control
def control_state(payload):
    AccessToken = get_access_token_model()
    RefreshToken = get_refresh_token_model()
    now = timezone.now()
    return {
        "access_tokens": AccessToken.objects.count(),
        "valid_access_tokens": AccessToken.objects.filter(expires__gt=now).count(),
        "refresh_tokens": RefreshToken.objects.count(),
        "active_refresh_tokens": RefreshToken.objects.filter(revoked__isnull=True).count(),
        "revoked_refresh_tokens": RefreshToken.objects.filter(revoked__isnull=False).count(),
    }
