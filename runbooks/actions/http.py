"""http_check: GET or HEAD an endpoint; the status, the latency against a threshold, a body excerpt."""

import base64
import http.client
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from opsportal.connections import ConnectionSettingError, is_env_reference, resolve
from runbooks.actions.base import (
    Action,
    ActionError,
    CheckResult,
    ParamsError,
    StepTimeout,
    Target,
    TransientError,
    number,
    only,
)
from runbooks.choices import CheckStatus

BODY_LIMIT = 64 * 1024
EXCERPT = 500
DEFAULT_MAX_LATENCY_MS = 1000


def validate(params: dict) -> dict:
    only(params, {"path", "url", "method", "expected_status", "max_latency_ms", "contains", "headers"})
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
    if headers:
        clean["headers"] = headers
    return clean


def describe(params: dict) -> str:
    return f"{params.get('method', 'GET')} {params.get('path') or params.get('url')}"


def fetch(url: str, *, method: str, headers: dict, timeout: float, target: Target) -> tuple[int, str, bytes, str]:
    """Status, reason, body (capped) and the URL without credentials; transient or timeout errors raised."""
    headers = {"User-Agent": "OpsPortal-runbook/1.0", "Accept": "*/*", **headers}
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        # An env: setting is only resolved here, so its scheme is checked here too (no file:// reads).
        raise ActionError(f"Only http and https URLs can be checked, not {parts.scheme or 'this'}:// URLs.")
    if parts.username is not None:
        # Credentials from an env: setting travel as basic auth; urllib refuses them inside the URL.
        token = f"{parts.username}:{parts.password or ''}"
        encoded = base64.b64encode(token.encode()).decode()
        target.masker.add(token)
        target.masker.add(encoded)  # a service that echoes its request headers must not leak them either
        headers["Authorization"] = f"Basic {encoded}"
        url = urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
    request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return response.status, response.reason, response.read(BODY_LIMIT), url
    except urllib.error.HTTPError as exc:
        return exc.code, exc.reason, exc.read(BODY_LIMIT), url
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise StepTimeout(f"No answer from {url} within {timeout:g} s.") from None
        raise TransientError(f"Could not connect to {url}: {exc.reason}") from None
    except TimeoutError:
        raise StepTimeout(f"No answer from {url} within {timeout:g} s.") from None
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(f"Could not talk to {url}: {type(exc).__name__}: {exc}") from None


def _headers(params: dict, target: Target) -> dict:
    headers = {}
    for name, value in params.get("headers", {}).items():
        if is_env_reference(value):
            try:
                value = resolve(value, masker=target.masker, label=f"Header {name}")
            except ConnectionSettingError as exc:
                raise ActionError(str(exc)) from None
        headers[name] = value
    return headers


def run(params: dict, target: Target, timeout: float) -> CheckResult:
    url = params.get("url") or target.setting("base_url").rstrip("/") + params["path"]
    started = time.perf_counter()
    status, reason, body, url = fetch(
        url, method=params["method"], headers=_headers(params, target), timeout=timeout, target=target
    )
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    text = body.decode("utf-8", errors="replace")
    problems, status_level = [], CheckStatus.OK
    if status != params["expected_status"]:
        problems.append(f"expected {params['expected_status']}")
        status_level = CheckStatus.CRITICAL
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
    return CheckResult(
        status=status_level,
        summary=summary,
        figures={"status_code": status, "latency_ms": latency_ms, "max_latency_ms": limit},
        output=f"{params['method']} {url} -> {status} {reason} in {latency_ms:g} ms\n\n{excerpt}".rstrip(),
        data={"url": url, "body_excerpt": excerpt},
    )


ACTION = Action(
    name="http_check",
    label="HTTP check",
    run=run,
    validate=validate,
    setting="base_url",
    setting_for=lambda params: None if params.get("url") else "base_url",
    describe=describe,
)
