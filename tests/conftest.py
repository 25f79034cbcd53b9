import pytest
from rest_framework.test import APIClient

from tests.factories import IncidentFactory, UserFactory

ROLES = ["anonymous", "viewer", "responder", "admin"]


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL (CI does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def viewer(db):
    return UserFactory(username="victor", role="viewer")


@pytest.fixture
def responder(db):
    return UserFactory(username="alice", role="responder")


@pytest.fixture
def responder2(db):
    return UserFactory(username="bob", role="responder")


@pytest.fixture
def admin_user(db):
    return UserFactory(username="root", role="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def user_for(viewer, responder, admin_user):
    return {"anonymous": None, "viewer": viewer, "responder": responder, "admin": admin_user}.__getitem__


@pytest.fixture
def api_for(user_for):
    """An API client signed in as the given role (None: anonymous)."""

    def make(role: str) -> APIClient:
        client = APIClient()
        user = user_for(role)
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def api(api_for):
    return api_for("responder")


@pytest.fixture
def incident(responder):
    return IncidentFactory(title="Checkout 5xx", created_by=responder)
