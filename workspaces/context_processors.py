from collections import Counter

from django.utils.functional import SimpleLazyObject

from .selectors import membership_for, workspaces_for_user


def workspaces(request) -> dict:
    """The header's workspace switcher and the current workspace on every page.

    Pages under ``/w/<workspace_slug>/`` put their workspace in the context
    themselves; the others (account pages, "not allowed" and "not found"
    pages) show the workspace the person was last in, so the header and its
    navigation stay put. ``switcher`` lists each workspace with its slug when
    two share a name.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    context = {"switcher": SimpleLazyObject(lambda: _switcher(user))}
    membership = getattr(request, "tenant_membership", None) or _last_membership(request, user)
    if membership is not None:
        context.update(workspace=membership.workspace, membership=membership)
    return context


def _switcher(user) -> list[dict]:
    workspaces = list(workspaces_for_user(user=user))
    names = Counter(w.name for w in workspaces)
    return [{"workspace": w, "show_slug": names[w.name] > 1} for w in workspaces]


def _last_membership(request, user):
    slug = request.session.get("workspace") if hasattr(request, "session") else None
    return membership_for(user=user, workspace_slug=slug) if slug else None
