import pytest

from incidents.models import Integration
from opsportal.celery import app as celery_app
from tests.factories import ServiceFactory


@pytest.fixture(autouse=True)
def eager_tasks():
    """Tasks run in-process (the intake's queueing included); a real worker is tested separately."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_eager_propagates = False


@pytest.fixture
def service(db):
    return ServiceFactory(name="Cosmetica API", slug="cosmetica-api")


@pytest.fixture
def integration_and_token(db):
    return Integration.create(name="prod-alertmanager", kind="alertmanager")


@pytest.fixture
def integration(integration_and_token):
    return integration_and_token[0]


@pytest.fixture
def post_alerts(client, integration_and_token):
    """POST a payload to the integration's URL the way Alertmanager does."""
    integration, token = integration_and_token

    def post(payload, *, token=token, kind=integration.kind, raw: bytes | None = None, **extra):
        import json

        body = raw if raw is not None else json.dumps(payload)
        return client.post(f"/api/integrations/{kind}/{token}/", body, content_type="application/json", **extra)

    return post
