"""http_check: GET or HEAD an endpoint of the target service; the status, the latency, a body excerpt.

A check runs by itself on an alert, so it reaches only its service: the host of the service's base
URL and the hosts the service lists (`Service.http_hosts`). The name is resolved once and every
address checked — loopback, link-local and cloud metadata addresses only when the base URL itself
is one, so DNS cannot point a check at the worker's neighbours — and the connection goes to the
checked address. Header values written env:NAME are read only for names the service declares as
its secrets. Redirects are followed only to the same host, and never with credentials. The output
of a request that carried credentials is hidden from viewers unless the step says `show_output`.
"""

import base64
import http.client
import ipaddress
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit

from opsportal.connections import (
    ConnectionSettingError,
    check_secret_reference,
    is_env_reference,
    resolve_secret,
)
from runbooks.actions.base import (
    Action,
    ActionError,
    CheckResult,
    ParamsError,
    StepTimeout,
    Target,
    TransientError,
    flag,
    number,
    only,
)
from runbooks.choices import CheckStatus

BODY_LIMIT = 64 * 1024
EXCERPT = 500
DEFAULT_MAX_LATENCY_MS = 1000
MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}
# Headers that carry credentials: their value is a secret, so it must come from env:NAME.
CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "cookie"}
# Cloud instance metadata services outside the link-local range (AWS IPv6, Alibaba, Oracle).
METADATA_ADDRESSES = {
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("192.0.0.192"),
}


def validate(params: dict) -> dict:
    only(params, {"path", "url", "method", "expected_status", "max_latency_ms", "contains", "headers", "show_output"})
    path, url = params.get("path"), params.get("url")
    if bool(path) == bool(url):
        raise ParamsError("give either path (joined to the target's base URL) or url.")
    clean: dict = {}
    if path:
        if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
            raise ParamsError("path must start with / and contain no spaces.")
        clean["path"] = path
    else:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ParamsError("url must be an http:// or https:// URL.")
        if parts.password is not None:
            raise ParamsError("url must not contain a password; send credentials in headers with env:NAME values.")
        clean["url"] = url
    method = str(params.get("method", "GET")).upper()
    if method not in {"GET", "HEAD"}:
        raise ParamsError("method must be GET or HEAD: an http_check only reads.")
    clean["method"] = method
    clean["expected_status"] = int(number(params, "expected_status", 200, minimum=100, maximum=599))
    clean["max_latency_ms"] = number(params, "max_latency_ms", DEFAULT_MAX_LATENCY_MS, minimum=1)
    contains = params.get("contains")
    if contains is not None:
        if not isinstance(contains, str) or not contains:
            raise ParamsError("contains must be a non-empty text.")
        clean["contains"] = contains
    headers = params.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ParamsError("headers must map names to text values (use env:NAME for secrets).")
    for name, value in headers.items():
        if is_env_reference(value):
            try:
                check_secret_reference(value, label=f"headers.{name}")
            except ValueError as exc:
                raise ParamsError(str(exc)) from None
        elif name.lower() in CREDENTIAL_HEADERS:
            raise ParamsError(f"headers.{name} carries credentials: write env:NAME, never the value itself.")
    if headers:
        clean["headers"] = headers
    if flag(params, "show_output"):
        clean["show_output"] = True
    return clean


def describe(params: dict) -> str:
    return f"{params.get('method', 'GET')} {params.get('path') or params.get('url')}"


def is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, link-local (169.254.169.254 among them), unspecified or a cloud metadata address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_link_local or address.is_unspecified or address in METADATA_ADDRESSES


def addresses(host: str, port: int) -> list[tuple[int, str]]:
    """Every address `host` resolves to, as (family, address)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransientError(f"Could not resolve {host}: {exc}") from None
    return list(dict.fromkeys((family, sockaddr[0].split("%")[0]) for family, _, _, _, sockaddr in found))


def checked_address(host: str, port: int, *, internal_allowed: bool) -> tuple[int, str]:
    """The address to connect to, once every address of `host` is one the check may reach."""
    found = addresses(host, port)
    for _, address in found:
        if is_internal(ipaddress.ip_address(address)) and not internal_allowed:
            raise ActionError(
                f"{host} resolves to {address}, a loopback, link-local or metadata address: a check reaches such "
                "an address only when its service's base URL is one."
            )
    return found[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Speaks to `host` (Host header) over a connection to the address that was checked."""

    def __init__(self, host, port, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # certificate checked for the name


def _shown(parts) -> str:
    """The URL without its credentials."""
    netloc = parts.hostname if ":" not in (parts.hostname or "") else f"[{parts.hostname}]"
    return parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else "")).geturl()


def _request(url: str, *, method: str, headers: dict, timeout: float, limit: float, address: str):
    """One request to `address`; `timeout` is what is left of the step's time `limit`."""
    parts = urlsplit(url)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(parts.hostname, parts.port, address=address, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    shown = _shown(parts)
    try:
        try:
            connection.connect()
        except TimeoutError:
            raise StepTimeout(f"No answer from {shown} within {limit:g} s.") from None
        except OSError as exc:
            raise TransientError(f"Could not connect to {shown}: {exc}") from None
        connection.request(method, target, headers=headers)
        response = connection.getresponse()
        body = response.read(BODY_LIMIT) if method != "HEAD" else b""
        return response.status, response.reason, response.getheader("Location"), body
    except TimeoutError:
        raise StepTimeout(f"No answer from {shown} within {limit:g} s.") from None
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(f"Could not talk to {shown}: {type(exc).__name__}: {exc}") from None
    finally:
        connection.close()


def fetch(
    url: str,
    *,
    method: str,
    headers: dict,
    timeout: float,
    target: Target,
    base: str,
    hosts: set[str] | None = None,
    credentials: bool = False,
) -> tuple[int, str, bytes, str, str]:
    """Status, reason, body (capped), the URL answered (without credentials) and a note on a redirect
    not followed; errors raised. Only `hosts` (default: the host of `base`, the service URL the request
    is made for) are reached, internal addresses only when `base` is one; only same-host redirects
    without credentials are followed."""
    headers = {"User-Agent": "OpsPortal-runbook/1.0", "Accept": "*/*", **headers}
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        # An env: setting is only resolved here, so its scheme is checked here too (no file:// reads).
        raise ActionError(f"Only http and https URLs can be checked, not {parts.scheme or 'this'}:// URLs.")
    if parts.username is not None:
        # Credentials from an env: setting travel as basic auth, never in the URL shown or followed.
        token = f"{parts.username}:{parts.password or ''}"
        target.masker.add(token)
        headers["Authorization"] = f"Basic {base64.b64encode(token.encode()).decode()}"
        credentials = True
    hosts = hosts or {(urlsplit(base).hostname or "").lower()}
    internal_allowed = _is_internal_url(base)
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host not in hosts:
            raise ActionError(
                f"{host} is not a host of service {target.name} ({', '.join(sorted(hosts))}): an admin lists it "
                "in the service's other hosts for HTTP checks (admin → Services)."
            )
        port = parts.port or (443 if parts.scheme == "https" else 80)
        _, address = checked_address(host, port, internal_allowed=internal_allowed)
        remaining = max(deadline - time.monotonic(), 0.001)
        status, reason, location, body = _request(
            url, method=method, headers=headers, timeout=remaining, limit=timeout, address=address
        )
        shown = _shown(parts)
        if status not in REDIRECTS or not location:
            return status, reason, body, shown, ""
        following = urlsplit(urljoin(url, location))
        if following.scheme not in {"http", "https"} or (following.hostname or "").lower() != host:
            return status, reason, body, shown, f"redirect to {_shown(following)} not followed: another host"
        if credentials:
            return (
                status,
                reason,
                body,
                shown,
                f"redirect to {_shown(following)} not followed: the request carries credentials",
            )
        url = following.geturl()
    return status, reason, body, shown, f"more than {MAX_REDIRECTS} redirects"


def _is_internal_url(url: str) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return all(is_internal(ipaddress.ip_address(address)) for _, address in addresses(parts.hostname or "", port))


def _headers(params: dict, target: Target) -> tuple[dict, bool]:
    """The headers with env: values resolved, and whether any carries a credential."""
    headers, credentials = {}, False
    declared = target.service.declared_secrets if target.service is not None else []
    for name, value in params.get("headers", {}).items():
        if is_env_reference(value):
            try:
                value = resolve_secret(value, declared=declared, masker=target.masker, label=f"Header {name}")
            except ConnectionSettingError as exc:
                raise ActionError(str(exc)) from None
            credentials = True
        credentials = credentials or name.lower() in CREDENTIAL_HEADERS
        headers[name] = value
    return headers, credentials


def run(params: dict, target: Target, timeout: float) -> CheckResult:
    base_url = target.setting("base_url")
    base = urlsplit(base_url)
    url = params.get("url") or base_url.rstrip("/") + params["path"]
    hosts = {(base.hostname or "").lower(), *target.service.extra_http_hosts}
    headers, credentials = _headers(params, target)
    started = time.perf_counter()
    status, reason, body, url, redirect_note = fetch(
        url, method=params["method"], headers=headers, timeout=timeout, target=target, base=base_url, hosts=hosts,
        credentials=credentials,
    )  # fmt: skip
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    credentials = credentials or base.username is not None
    text = body.decode("utf-8", errors="replace")
    problems, status_level = [], CheckStatus.OK
    if status != params["expected_status"]:
        problems.append(f"expected {params['expected_status']}")
        status_level = CheckStatus.CRITICAL
    if redirect_note:
        problems.append(redirect_note)
    if params.get("contains") and params["contains"] not in text:
        problems.append(f"body lacks {params['contains']!r}")
        status_level = CheckStatus.CRITICAL
    limit = params["max_latency_ms"]
    if latency_ms > limit:
        problems.append(f"slower than {limit:g} ms")
        if status_level == CheckStatus.OK:
            status_level = CheckStatus.WARNING
    summary = f"HTTP {status} in {latency_ms:g} ms" + (f" ({'; '.join(problems)})" if problems else "")
    excerpt = text[:EXCERPT]
    data = {"url": url, "body_excerpt": excerpt}
    if credentials and not params.get("show_output"):
        data["private_output"] = True  # viewers see the status and figures, not what came back
    return CheckResult(
        status=status_level,
        summary=summary,
        figures={"status_code": status, "latency_ms": latency_ms, "max_latency_ms": limit},
        output=f"{params['method']} {url} -> {status} {reason} in {latency_ms:g} ms\n\n{excerpt}".rstrip(),
        data=data,
    )


def target_problem(params: dict, service) -> str | None:
    """A URL on a host the service does not list (known before the run when its base URL is plain)."""
    if not params.get("url") or is_env_reference(service.base_url):
        return None
    host = (urlsplit(params["url"]).hostname or "").lower()
    if host in {(urlsplit(service.base_url).hostname or "").lower(), *service.extra_http_hosts}:
        return None
    return (
        f"{host} is not a host of service {service.slug}: an admin lists it in the service's other hosts "
        "for HTTP checks (admin → Services) to run http_check against it."
    )


ACTION = Action(
    name="http_check",
    label="HTTP check",
    run=run,
    validate=validate,
    setting="base_url",
    target_problem=target_problem,
    describe=describe,
)
