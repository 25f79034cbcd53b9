"""prometheus_query: an instant PromQL query against the target's Prometheus, with optional thresholds."""

import json
import math
import time
from urllib.parse import urlencode

from runbooks.actions.base import (
    Action,
    ActionError,
    CheckResult,
    ParamsError,
    Target,
    TransientError,
    number,
    only,
    threshold_status,
    worst,
)
from runbooks.actions.http import fetch
from runbooks.choices import CheckStatus

SERIES_SHOWN = 200
THRESHOLDS = ("warn_above", "critical_above", "warn_below", "critical_below")


def validate(params: dict) -> dict:
    only(params, {"query", *THRESHOLDS})
    query = params.get("query")
    if not isinstance(query, str) or not query.strip() or len(query) > 5000:
        raise ParamsError("query must be a PromQL expression (up to 5000 characters).")
    clean = {"query": query.strip()}
    for key in THRESHOLDS:
        value = number(params, key, None, minimum=-math.inf)
        if value is not None:
            clean[key] = value
    return clean


def describe(params: dict) -> str:
    return " ".join(params["query"].split())[:80]


def _labels(metric: dict) -> str:
    name = metric.get("__name__", "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{inner}}}" if inner or not name else name


def _series(data: dict) -> list[tuple[str, float]]:
    kind, result = data.get("resultType"), data.get("result")
    if kind in {"scalar", "string"}:
        return [("scalar", float(result[1]))] if kind == "scalar" else []
    series = []
    for item in result or []:
        # A matrix (from a subquery) is summarised by its last sample.
        value = item["value"] if "value" in item else item["values"][-1]
        series.append((_labels(item.get("metric", {})), float(value[1])))
    return series


def run(params: dict, target: Target, timeout: float) -> CheckResult:
    params = validate(params)
    base = target.setting("prometheus_url").rstrip("/")
    url = f"{base}/api/v1/query?{urlencode({'query': params['query'], 'timeout': f'{max(timeout - 1, 1):g}s'})}"
    started = time.perf_counter()
    status, _, body, _, _ = fetch(
        url, method="GET", headers={"Accept": "application/json"}, timeout=timeout, target=target, base=base
    )
    ms = round((time.perf_counter() - started) * 1000, 1)
    try:
        payload = json.loads(body)
    except ValueError:
        if status >= 500:
            raise TransientError(f"Prometheus answered HTTP {status}.") from None
        raise ActionError(f"Prometheus answered HTTP {status} with a body that is not JSON.") from None
    if payload.get("status") != "success":
        message = f"{payload.get('errorType', 'error')}: {payload.get('error', 'unknown error')}"
        if status >= 500:
            raise TransientError(f"Prometheus could not run the query ({message}).")
        raise ActionError(f"Prometheus rejected the query ({message}).")
    series = sorted(_series(payload.get("data", {})), key=lambda s: s[1], reverse=True)
    values = [v for _, v in series if math.isfinite(v)]
    if values:
        status_level = worst(
            threshold_status(max(values), params.get("warn_above"), params.get("critical_above")),
            threshold_status(
                min(values), params.get("warn_below"), params.get("critical_below"), higher_is_worse=False
            ),
        )
        summary = f"{len(series)} series, highest {max(values):g} ({series[0][0]})"
    else:
        status_level, summary = CheckStatus.OK, "No series: the query matched nothing"
    lines = [f"{labels} {value:g}" for labels, value in series[:SERIES_SHOWN]]
    if len(series) > SERIES_SHOWN:
        lines.append(f"... {len(series) - SERIES_SHOWN} more series")
    return CheckResult(
        status_level,
        summary,
        figures={
            "series": len(series),
            "max": max(values, default=None),
            "min": min(values, default=None),
            "latency_ms": ms,
        },
        output="\n".join(lines) or summary,
        data={"series": [{"labels": k, "value": v if math.isfinite(v) else None} for k, v in series[:50]]},
    )


ACTION = Action(
    name="prometheus_query",
    label="Prometheus query",
    run=run,
    validate=validate,
    setting="prometheus_url",
    describe=describe,
)
