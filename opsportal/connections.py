"""Connection settings for the services runbooks act on, without credentials in the database.

A setting is either a plain URL that carries no password (``redis://cache.internal:6379/0``) or
a reference to an environment variable of the worker, ``env:ORDERS_DATABASE_URL``, resolved only
when a step runs. Everything a worker prints or stores passes through a `Masker` that knows the
resolved secrets, so they never reach step output, logs or the API.

A step may also send a secret of its own (an HTTP header written ``env:CHECKOUT_TOKEN``): only a
name its service declares as one of its secrets, and never one of the worker's own settings.
"""

import base64
import os
import re
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

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
# The worker's own settings: a step never sends them, whatever a service declares.
WORKER_SETTINGS = frozenset(
    {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "EMAIL_HOST_PASSWORD"}
)
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$|^\[[0-9a-f:.]+\]$"
)
# Shorter secrets' encodings would mask ordinary text; the secret itself is always masked.
_MIN_ENCODED = 8


class ConnectionSettingError(Exception):
    """A setting that cannot be resolved on this worker (e.g. a missing environment variable)."""


def is_env_reference(value: str) -> bool:
    return value.startswith(ENV_PREFIX)


def name_list(value: str) -> list[str]:
    """The entries of a comma- or line-separated list, in order, blanks dropped."""
    return [item.strip() for item in re.split(r"[,\s]+", value or "") if item.strip()]


def validate_secret_names(value: str) -> None:
    """A service's declared secrets: environment variable names, none of them the worker's own settings."""
    for name in name_list(value):
        if not _ENV_NAME.match(name):
            raise ValidationError(f"{name!r} is not an environment variable name (capitals, digits and underscores).")
        if name in WORKER_SETTINGS:
            raise ValidationError(f"{name} is the portal's own setting: a step can never send it.")


def validate_host_list(value: str) -> None:
    """Host names (or bracketed IPv6 / plain IPv4 addresses) without scheme, port or path."""
    for host in name_list(value):
        if not _HOST.match(host.lower()):
            raise ValidationError(
                f"{host!r} is not a host name: give names like api.example.com, without scheme or port."
            )


def check_secret_reference(value: str, *, label: str) -> str:
    """The variable name of a step's env:NAME value; ValueError unless it could ever be sent."""
    name = value[len(ENV_PREFIX) :]
    if not _ENV_NAME.match(name):
        raise ValueError(
            f"{label}: {value!r} is not a valid reference: use env:NAME with NAME in capitals, digits and underscores."
        )
    if name in WORKER_SETTINGS:
        raise ValueError(f"{label}: {name} is the portal's own setting and is never sent by a step.")
    return name


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
        """Registers a resolved setting: the whole value, and the password inside it if it is a URL,
        each also as a service echoing it would encode it (base64, URL-encoding, hex)."""
        if not value:
            return
        self._add(value)
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password and len(password) >= 3:
            self._add(password)

    def _add(self, secret: str) -> None:
        self._secrets.add(secret)
        raw = secret.encode()
        encoded = {quote(secret, safe=""), quote_plus(secret), quote(secret), raw.hex(), raw.hex().upper()}
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            whole = encode(raw).decode()
            encoded |= {whole, whole.rstrip("=")}
            # Inside a longer encoded text the secret starts at one of three byte offsets; for each,
            # the 4-character groups made of the secret's bytes alone are the same whatever surrounds it.
            for offset in (0, 1, 2):
                shifted = encode(b"\0" * offset + raw).decode()
                first = 1 if offset else 0
                last = len(shifted) // 4 - (1 if (offset + len(raw)) % 3 else 0)
                encoded.add(shifted[first * 4 : last * 4])
        self._secrets |= {e for e in encoded if e != secret and len(e) >= _MIN_ENCODED}

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


def resolve_secret(value: str, *, declared: list[str], masker: Masker, label: str) -> str:
    """A step's env:NAME value, read only when NAME is one of the secrets its service declares."""
    try:
        name = check_secret_reference(value, label=label)
    except ValueError as exc:
        raise ConnectionSettingError(str(exc)) from None
    if name not in declared:
        raise ConnectionSettingError(
            f"{label} refers to {name}, which is not one of the secrets its service declares "
            f"({', '.join(declared) or 'none'}): an admin adds it to the service's secrets (admin → Services)."
        )
    return resolve(value, masker=masker, label=label)


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
