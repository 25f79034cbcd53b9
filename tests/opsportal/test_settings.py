"""Settings fail loudly, naming the variable, when the environment has a bad value."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from opsportal import env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "value", "reader"),
    [
        ("DEBUG", "maybe", lambda: env.env_bool("DEBUG", False)),
        ("PAGE", "ten", lambda: env.env_int("PAGE", 1)),
        ("PAGE", "0", lambda: env.env_int("PAGE", 1, minimum=1)),
        ("DATABASE_URL", "mysql://db/x", lambda: env.env_url("DATABASE_URL", {"postgres", "sqlite"})),
        ("CSRF_TRUSTED_ORIGINS", "ops.example.com", lambda: env.env_origins("CSRF_TRUSTED_ORIGINS")),
        ("TIME_ZONE", "Mars/Olympus", lambda: env.env_timezone("TIME_ZONE", "UTC")),
    ],
)
def test_bad_values_raise_naming_the_variable(monkeypatch, name, value, reader):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        reader()


def test_good_values(monkeypatch):
    monkeypatch.setenv("DEBUG", "Yes")
    monkeypatch.setenv("ALLOWED_HOSTS", "ops.example.com, localhost ,")
    monkeypatch.setenv("TIME_ZONE", "Europe/Paris")
    assert env.env_bool("DEBUG", False) is True
    assert env.env_list("ALLOWED_HOSTS", []) == ["ops.example.com", "localhost"]
    assert env.env_timezone("TIME_ZONE", "UTC") == "Europe/Paris"
    assert env.env_bool("UNSET_FLAG", True) is True


SETUP = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CACHES['default']['BACKEND'])"
)


def load_settings(code: str = SETUP, **overrides) -> subprocess.CompletedProcess:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_VISIBILITY_TIMEOUT"}
    }
    environment.update({"SECRET_KEY": "k" * 50, "OPSPORTAL_VAR_DIR": str(ROOT / "var" / "test"), **overrides})
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environment, "DJANGO_SETTINGS_MODULE": "opsportal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embedded_default_needs_only_python():
    result = load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "filesystem://",
        "django.core.cache.backends.filebased.FileBasedCache",
    ]


def test_database_and_redis_urls_switch_to_the_production_setup():
    result = load_settings(DATABASE_URL="postgres://ops@db:5432/ops", REDIS_URL="redis://cache:6379/0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "redis://cache:6379/0",
        "django_redis.cache.RedisCache",
    ]


@pytest.mark.parametrize(
    ("visibility_timeout", "sweep"),
    [(None, (3600, 10, 10)), ("300", (300, 10, 3)), ("60", (60, 6, 1)), ("10", (10, 1, 1))],
)
def test_unacked_redis_messages_are_swept_at_a_tenth_of_the_visibility_timeout(visibility_timeout, sweep):
    """kombu hands an expired message out again on its sweep (interval x throttle seconds, 100 s by
    default): a short CELERY_VISIBILITY_TIMEOUT gets a sweep to match, the default keeps kombu's."""
    overrides = {"REDIS_URL": "redis://cache:6379/0"}
    if visibility_timeout is not None:
        overrides["CELERY_VISIBILITY_TIMEOUT"] = visibility_timeout
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "o = s.CELERY_BROKER_TRANSPORT_OPTIONS; "
        "print(o['visibility_timeout'], o['unacked_restore_interval'], o['unacked_restore_throttle'])"
    )
    result = load_settings(**overrides, code=code)
    assert result.returncode == 0, result.stderr
    assert tuple(int(v) for v in result.stdout.split()) == sweep


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "perhaps"),
        ("DATABASE_URL", "oracle://x/y"),
        ("REDIS_URL", "http://cache:6379"),
        ("CELERY_BROKER_URL", "sqs://queue"),
        ("TIME_ZONE", "Nowhere/City"),
        ("CSRF_TRUSTED_ORIGINS", "ops.example.com"),
        ("SECRET_KEY", ""),
    ],
)
def test_start_up_fails_naming_the_bad_variable(variable, value):
    result = load_settings(**{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and variable in result.stderr


def test_the_key_generated_by_make_run_is_used_when_secret_key_is_unset(tmp_path):
    (tmp_path / "secret_key").write_text("generated-by-make-run-" + "x" * 40 + "\n")
    result = load_settings(SECRET_KEY="", OPSPORTAL_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert load_settings(SECRET_KEY="", OPSPORTAL_VAR_DIR=str(tmp_path / "empty")).returncode != 0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"OPSPORTAL_PORT": "8124"}, "http://127.0.0.1:8124"),
        ({"HOST": "0.0.0.0", "OPSPORTAL_PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"HOST": "::1", "OPSPORTAL_PORT": "9000"}, "http://[::1]:9000"),
        ({"OPSPORTAL_PORT": "8124", "PORTAL_BASE_URL": "https://ops.example.com/"}, "https://ops.example.com"),
    ],
)
def test_the_portal_base_url_follows_where_make_run_binds(overrides, expected):
    environment = {k: v for k, v in os.environ.items() if k not in {"PORTAL_BASE_URL", "HOST", "OPSPORTAL_PORT"}}
    code = "import django; django.setup(); from django.conf import settings as s; print(s.PORTAL_BASE_URL)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environment, "SECRET_KEY": "k" * 50, "DJANGO_SETTINGS_MODULE": "opsportal.settings", **overrides},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_a_port_out_of_range_names_the_variable():
    result = load_settings(OPSPORTAL_PORT="70000")
    assert result.returncode != 0 and "OPSPORTAL_PORT=70000 must be at most 65535" in result.stderr


def test_makemigrations_check_runs_in_a_fresh_clone_without_a_key(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL"}}
    environment["OPSPORTAL_VAR_DIR"] = str(tmp_path)  # no var/secret_key either
    command = [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "No changes detected" in result.stdout
    # A command that may sign still refuses to start without one.
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--plan"], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr
