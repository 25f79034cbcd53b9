"""The three roles of the portal and the checks every view and endpoint uses.

- viewer: any signed-in active user; reads everything.
- responder: member of the "responder" group; declares incidents, edits timelines, moves
  incidents through their lifecycle.
- admin: superuser or member of the "admin" group; everything a responder does, plus the
  Django admin (staff flag) and administrative endpoints.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

VIEWER, RESPONDER, ADMIN = "viewer", "responder", "admin"
ROLE_GROUPS = (VIEWER, RESPONDER, ADMIN)


def _groups(user) -> set[str]:
    cached = getattr(user, "_opsportal_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._opsportal_groups = cached
    return cached


def is_admin(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and (user.is_superuser or ADMIN in _groups(user)))


def is_responder(user) -> bool:
    return is_admin(user) or bool(user and user.is_authenticated and user.is_active and RESPONDER in _groups(user))


def is_viewer(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def role_of(user) -> str | None:
    if is_admin(user):
        return ADMIN
    if is_responder(user):
        return RESPONDER
    if is_viewer(user):
        return VIEWER
    return None


class IsViewer(BasePermission):
    """Reads for every signed-in user; writes only for responders."""

    message = "You need the responder role to change incidents."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return is_viewer(request.user)
        return is_responder(request.user)


class IsAdmin(BasePermission):
    message = "You need the admin role for this."

    def has_permission(self, request, view) -> bool:
        return is_admin(request.user)


def _role_required(check, message: str):
    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


# Portal view decorators: sign-in first (redirect), then the role (403 otherwise).
responder_required = _role_required(is_responder, "You need the responder role to change incidents.")
admin_required = _role_required(is_admin, "You need the admin role for this.")


def users_who_respond(*, admins_only: bool = False):
    """Active people with the responder role (or admin): who can decide an approval."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    groups = [ADMIN] if admins_only else [RESPONDER, ADMIN]
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=groups))
        .distinct()
        .order_by("username")
    )


def roles_context(request) -> dict:
    user = getattr(request, "user", None)
    return {"can_respond": is_responder(user), "user_role": role_of(user)}
