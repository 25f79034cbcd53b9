"""Connection settings for the services runbooks act on, without credentials in the database.

A setting is either a plain URL that carries no password (``redis://cache.internal:6379/0``) or
a reference to an environment variable of the worker, ``env:ORDERS_DATABASE_URL``, resolved only
when a step runs. Everything a worker prints or stores passes through a `Masker` that knows the
resolved secrets, so they never reach step output, logs or the API.
"""

import os
import re
from urllib.parse import parse_qsl, urlsplit

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

ENV_PREFIX = "env:"
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# Query parameters that carry credentials in the URL forms of libpq, redis-py and HTTP APIs.
_SECRET_PARAMS = re.compile(r"^(password|passwd|pwd|pass|secret|token|api[_-]?key|access[_-]?key|auth\w*|sslpassword)$")
_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^/@\s]*)@", re.I)
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&](?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth\w*)=)[^&\s#]+", re.I
)
MASK = "***"


class ConnectionSettingError(Exception):
    """A setting that cannot be resolved on this worker (e.g. a missing environment variable)."""


def is_env_reference(value: str) -> bool:
    return value.startswith(ENV_PREFIX)


@deconstructible
class ConnectionSettingValidator:
    """Accepts `env:NAME` or a URL with one of `schemes` and no password in it."""

    def __init__(self, schemes: tuple[str, ...]):
        self.schemes = tuple(schemes)

    def __call__(self, value: str) -> None:
        value = (value or "").strip()
        if not value:
            return
        if is_env_reference(value):
            name = value[len(ENV_PREFIX) :]
            if not _ENV_NAME.match(name):
                raise ValidationError(
                    f"{value!r} is not a valid reference: use env:NAME with NAME in capitals, digits and underscores."
                )
            return
        parts = urlsplit(value)
        if parts.scheme not in self.schemes:
            raise ValidationError(
                f"Expected a URL starting with {' or '.join(s + '://' for s in self.schemes)}, or env:NAME."
            )
        if parts.scheme != "unix" and not parts.hostname:
            raise ValidationError("The URL needs a host.")
        if parts.password is not None or any(_SECRET_PARAMS.match(k.lower()) for k, _ in parse_qsl(parts.query)):
            raise ValidationError(
                "Credentials are never stored in the database: put the full URL in an environment variable "
                "of the workers and enter env:NAME here."
            )

    def __eq__(self, other) -> bool:
        return isinstance(other, ConnectionSettingValidator) and self.schemes == other.schemes


class Masker:
    """Replaces known secret values, and any credentials found in URLs, with ***."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, value: str) -> None:
        """Registers a resolved setting: the whole value, and the password inside it if it is a URL."""
        if not value:
            return
        self._secrets.add(value)
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password and len(password) >= 3:
            self._secrets.add(password)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = _CREDENTIALS_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        return _SECRET_QUERY.sub(lambda m: f"{m['key']}{MASK}", text)

    def data(self, value):
        """Masks every string inside JSON-like data."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def resolve(value: str, *, masker: Masker, label: str) -> str:
    """The usable value of a setting on this worker; `label` names it in errors (e.g. "orders: database URL")."""
    value = (value or "").strip()
    if not value:
        raise ConnectionSettingError(f"{label} is not configured.")
    if not is_env_reference(value):
        return value
    name = value[len(ENV_PREFIX) :]
    resolved = os.environ.get(name, "").strip()
    if not resolved:
        raise ConnectionSettingError(
            f"{label} refers to the environment variable {name}, which is not set on this worker."
        )
    masker.add(resolved)
    return resolved
