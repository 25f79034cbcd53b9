"""Service connection settings: no credentials in the database, env: references, masking."""

import pytest
from django.core.exceptions import ValidationError

from incidents.models import Service
from opsportal.connections import ConnectionSettingError, ConnectionSettingValidator, Masker, resolve


@pytest.mark.parametrize(
    "value",
    [
        "",
        "env:ORDERS_DATABASE_URL",
        "postgres://readonly@db.internal:5432/orders",
        "postgresql://db.internal/orders?sslmode=require",
    ],
)
def test_database_url_accepts_references_and_urls_without_a_password(value):
    ConnectionSettingValidator(("postgres", "postgresql"))(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("postgres://app:hunter2@db/orders", "never stored in the database"),
        ("postgres://db/orders?password=hunter2", "never stored in the database"),
        ("redis://db:6379/0", "Expected a URL starting with postgres:// or postgresql://"),
        ("env:orders_url", "NAME in capitals"),
        ("env:", "NAME in capitals"),
        ("postgres:///orders", "needs a host"),
    ],
)
def test_database_url_refuses_credentials_and_nonsense(value, message):
    with pytest.raises(ValidationError, match=message):
        ConnectionSettingValidator(("postgres", "postgresql"))(value)


@pytest.mark.django_db
def test_a_service_with_a_password_in_a_url_does_not_validate():
    service = Service(
        name="Orders", slug="orders", redis_url="redis://:s3cret@cache:6379/0", base_url="https://orders.internal"
    )
    with pytest.raises(ValidationError) as info:
        service.full_clean()
    assert set(info.value.message_dict) == {"redis_url"}


@pytest.mark.django_db
def test_the_admin_form_refuses_a_password(admin_client):
    response = admin_client.post(
        "/admin/incidents/service/add/",
        {"name": "Orders", "slug": "orders", "database_url": "postgres://app:hunter2@db/orders"},
    )
    assert response.status_code == 200 and "Credentials are never stored in the database" in response.content.decode()
    assert not Service.objects.exists()


def test_resolve_reads_the_environment_and_registers_the_secret(monkeypatch):
    monkeypatch.setenv("ORDERS_DATABASE_URL", "postgres://app:hunter2@db/orders")
    masker = Masker()
    assert resolve("env:ORDERS_DATABASE_URL", masker=masker, label="orders") == "postgres://app:hunter2@db/orders"
    assert masker("connecting to postgres://app:hunter2@db/orders as hunter2") == "connecting to *** as ***"
    assert resolve("redis://cache:6379/0", masker=masker, label="x") == "redis://cache:6379/0"


def test_resolve_names_a_missing_variable(monkeypatch):
    monkeypatch.delenv("MISSING_URL", raising=False)
    with pytest.raises(
        ConnectionSettingError, match="refers to the environment variable MISSING_URL, which is not set"
    ):
        resolve("env:MISSING_URL", masker=Masker(), label="Service orders: database URL")
    with pytest.raises(ConnectionSettingError, match="is not configured"):
        resolve("", masker=Masker(), label="Service orders: database URL")


def test_masker_hides_credentials_in_any_url_and_in_data():
    masker = Masker()
    text = "redis://default:pa55word@cache:6379 and https://api/x?token=abc123&page=2"
    assert masker(text) == "redis://default:***@cache:6379 and https://api/x?token=***&page=2"
    assert masker.data({"rows": [["postgres://u:p4ss@h/db"]], "n": 1}) == {"rows": [["postgres://u:***@h/db"]], "n": 1}
