"""The five real runbook documents: what each import recognises, and that nothing is lost."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from runbooks.importer import import_document
from runbooks.importer.structure import clean_title
from runbooks.models import Runbook, RunbookDocument, RunbookStep, RunbookVersion
from tests.runbooks.conftest import SEEDS

pytestmark = pytest.mark.django_db

SEED_NAMES = sorted(p.name for p in SEEDS.glob("*.md"))


def seed(name: str) -> bytes:
    return (SEEDS / name).read_bytes()


def imported(name: str):
    report = import_document(seed(name), name=name)
    return report, {r.title: Runbook.objects.get(slug=r.slug) for r in report.runbooks}


def steps_of(runbook: Runbook) -> list[RunbookStep]:
    return list(runbook.current_version.steps.order_by("order"))


def step(runbook: Runbook, title: str) -> RunbookStep:
    return next(s for s in steps_of(runbook) if s.title == title)


def has(params: dict, **expected) -> bool:
    """Stored parameters carry every default explicitly; these tests look at what the import set."""
    return params.items() >= expected.items()


def test_the_daily_health_check_becomes_automated_http_redis_postgres_and_host_steps():
    _, runbooks = imported("queue-cache-db-runbooks.md")
    health = runbooks["System Health Checks"]
    by_title = {s.title: s for s in steps_of(health)}
    api = by_title["Check API Health"]
    assert (api.kind, api.action, api.safety) == ("automated", "http_check", "read_only")
    # The "Expected Results" list sets the thresholds: "Status 200, response time <100ms".
    assert api.params == {"path": "/health", "method": "GET", "expected_status": 200, "max_latency_ms": 100}
    assert api.command == "curl http://localhost:3001/health"
    assert by_title["Check Redis Connection"].action == "redis_check"
    assert has(by_title["Check Redis Connection"].params, check="ping")
    assert by_title["Check Redis Connection"].expected == "PONG response"
    assert has(by_title["Check Database Connection"].params, check="select_1")
    assert has(by_title["Check Disk Space"].params, check="disk", warn_percent=80, critical_percent=90)
    assert by_title["Check Memory Usage"].params["check"] == "memory"
    # Not recognised stays manual, with its command attached.
    assert by_title["Check Queue Status"].kind == "manual"
    assert by_title["Check Running Processes"].command == "pm2 list  # or docker ps"
    assert [s["title"] for s in health.current_version.sections] == ["Daily Health Check", "Expected Results"]


def test_queue_cache_db_destructive_commands_are_dangerous_and_reads_are_checks():
    report, runbooks = imported("queue-cache-db-runbooks.md")
    connections = runbooks["Check Connections"]
    kill = step(connections, "Kill long-running queries (>5 minutes)")
    assert (kill.kind, kill.safety) == ("manual", "dangerous")
    assert "pg_terminate_backend" in kill.command
    assert has(step(connections, "Check connections by state").params, check="connections_by_state")

    clear = steps_of(runbooks["Clear Cache"])
    assert [(s.command, s.safety) for s in clear] == [
        ("redis-cli FLUSHALL", "dangerous"),
        ("redis-cli -n 0 FLUSHDB", "dangerous"),
        ('redis-cli KEYS "gemini:*" | xargs redis-cli DEL', "dangerous"),
    ]
    keys = steps_of(runbooks["Cache Key Patterns"])
    assert has(keys[0].params, check="count_keys", pattern="gemini:*")
    assert has(keys[1].params, check="count_keys", pattern="project:*")
    assert has(keys[2].params, check="ttl", key="gemini:analysis:scene:123")
    # Commands typed inside an interactive `redis-cli` session are recognised too.
    health = steps_of(runbooks["Check Cache Health"])
    assert [s.params.get("check") for s in health] == ["info_memory", "hit_rate", "dbsize", None]
    performance = steps_of(runbooks["Check Database Performance"])
    assert [s.params.get("check") for s in performance] == ["slow_queries", "unused_indexes", "table_sizes"]
    assert performance[0].params["min_mean_ms"] == 100
    assert {s.safety for s in steps_of(runbooks["Reindex"])} == {"dangerous"}
    assert {s.safety for s in steps_of(runbooks["Analyze Tables"])} == {"change"}
    weekly = {s.command: s.safety for s in steps_of(runbooks["Weekly Maintenance"])}
    assert weekly['find /var/log -name "*.log" -mtime +30 -delete'] == "dangerous"
    assert weekly['psql $DATABASE_URL -c "VACUUM ANALYZE;"'] == "change"
    assert step(runbooks["Backup Database"], "Restore from backup").safety == "dangerous"
    service_down = {s.command: s for s in steps_of(runbooks["Service Down"])}
    assert service_down["pm2 restart app  # or docker-compose restart"].safety == "dangerous"
    assert service_down["curl http://localhost:3001/health"].action == "http_check"
    assert runbooks["Service Down"].severity == "SEV1"
    assert report.automated == {"redis_check": 13, "postgres_query": 10, "host_check": 5, "http_check": 3}


def test_cosmetica_alert_runbooks_follow_the_template():
    report, runbooks = imported("cosmetica-critical-alert-runbooks.md")
    alerts = ["APIHigh5xxRate", "SalePaidTransitionFailures", "StockConsumeFailures", "RefundFailures"]
    alerts.append("ThrottleDisabledOrNotWorking")
    for alert in alerts:
        runbook = runbooks[alert]
        assert runbook.alert_names == [alert] and runbook.severity == "SEV1"
        kinds = {s["kind"] for s in runbook.current_version.sections}
        assert {"context", "first_look", "diagnostics", "hypotheses", "safe_actions", "escalation"} <= kinds
    api = runbooks["APIHigh5xxRate"]
    top = step(api, "Find Top Failing Endpoints")
    assert top.action == "prometheus_query" and top.params["query"].startswith("topk(10, sum by (path, status)")
    assert top.expected.startswith('/api/sales/123/transition/ {status="500"} 0.5')
    assert has(step(api, "Check long-running queries").params, check="long_running_queries")
    assert step(api, "Restart Gunicorn workers (releases DB connections)").safety == "dangerous"
    assert step(api, "Or rolling restart (zero downtime)").command == "kill -HUP $(cat /var/run/gunicorn.pid)"
    external = step(api, "Check external services")
    assert has(external.params, url="https://external-api.example.com/health", method="HEAD")
    # A "NOT Safe" section marks its steps dangerous.
    sale = runbooks["SalePaidTransitionFailures"]
    unsafe = [n for n, s in enumerate(sale.current_version.sections) if s["title"] == "NOT Safe"]
    unsafe_steps = [s for s in steps_of(sale) if s.section in unsafe]
    assert len(unsafe_steps) == 2 and {s.safety for s in unsafe_steps} == {"dangerous"}
    assert "Manually adjusting quantity_on_hand" in unsafe_steps[0].title
    # ORM writes in a Django shell snippet are dangerous too.
    assert any(s.safety == "dangerous" and "expired.update(is_active=False)" in s.command for s in steps_of(sale))
    assert {"Overview", "Runbook Template", "Escalation Contacts", "References"} <= set(report.document_sections)


def test_express_common_incidents_become_one_runbook_each():
    report, runbooks = imported("express-api-ops-runbook.md")
    incidents = [r for r in report.runbooks if Runbook.objects.get(slug=r.slug).category == "Common incidents"]
    assert len(incidents) == 4
    postgres = steps_of(runbooks["Postgres unavailable"])
    assert [(s.kind, s.safety) for s in postgres] == [
        ("manual", "read_only"),
        ("manual", "read_only"),
        ("manual", "dangerous"),  # "restart the service"
        ("automated", "read_only"),
        ("manual", "change"),
    ]
    assert has(postgres[3].params, path="/ready", method="GET") and postgres[3].command == (
        "curl -f http://localhost:3000/ready"
    )
    assert "docker compose -f compose.prod.yml ps db" in postgres[0].command
    lockouts = steps_of(runbooks["Excessive login lockouts"])
    assert lockouts[1].safety == "dangerous"  # delete lockout keys / flush Redis keys
    guard = step(runbooks["Metrics endpoint failing authentication"], "Verify guard configuration")
    assert "METRICS_GUARD=cidr" in guard.instructions
    assert report.document_sections == ["Service overview", "Dashboards & metrics", "Environment toggles"]


def test_automechanica_labelled_lists_become_sections():
    _, runbooks = imported("automechanica-incident-runbooks.md")
    db = runbooks["Database Connection Failures"]
    assert [(s["title"], s["kind"]) for s in db.current_version.sections] == [
        ("1) Database Connection Failures", "procedure"),
        ("Detect", "context"),
        ("Immediate actions", "first_look"),
        ("Diagnostics", "diagnostics"),
        ("Recovery", "safe_actions"),
    ]
    assert "connection errors in logs" in db.current_version.sections[1]["body"]
    by_title = {s.title: s for s in steps_of(db)}
    psql = by_title['psql <DATABASE_URL> -c "select now()" (if available).']
    assert psql.action == "postgres_query" and has(psql.params, sql="select now()")
    assert by_title["Restart DB service if safe (npm run db:restart for local)."].safety == "dangerous"


def test_balcon_plain_labels_and_reference_material():
    report, runbooks = imported("balcon-ops-runbooks.md")
    surges = runbooks["5xx surges"]
    assert [s["title"] for s in surges.current_version.sections][1:] == [
        "Symptoms",
        "Immediate Actions",
        "Deep Dive",
        "Recovery",
    ]
    pause = next(s for s in steps_of(surges) if s.command == "POST /api/ops/jobs/pause")
    assert pause.safety == "change"
    assert report.document_sections == ["Introduction", "General Triage Checklist", "References", "Appendix"]
    document = RunbookDocument.objects.get(key="balcon-ops-runbooks")
    appendix = next(s for s in document.sections if s["title"] == "Appendix")
    assert "OPERATIONS_METRICS.md" in appendix["body"]


def _headings_and_code(text: str) -> tuple[list[str], list[str]]:
    root = SyntaxTreeNode(MarkdownIt("commonmark").enable("table").parse(text))
    headings, code = [], []

    def walk(node):
        if node.type == "heading":
            headings.append("".join(c.content for c in node.children[0].children if c.type in {"text", "code_inline"}))
        if node.type == "fence" and node.content.strip():
            code.append(node.content)
        for child in node.children:
            walk(child)

    walk(root)
    return headings, code


@pytest.mark.parametrize("name", SEED_NAMES)
def test_every_heading_and_code_block_of_each_seed_survives(name):
    report = import_document(seed(name), name=name)
    document = RunbookDocument.objects.get(key=report.key)
    runbooks = Runbook.objects.filter(document=document).select_related("current_version")
    titles = {document.title, *(s["title"] for s in document.sections)}
    stored_text = [s["body"] for s in document.sections]
    for runbook in runbooks:
        version = runbook.current_version
        titles |= {runbook.title, runbook.category, *(s["title"] for s in version.sections)}
        stored_text += [s["body"] for s in version.sections]
        stored_text += [f"{s.title}\n{s.command}\n{s.instructions}\n{s.expected}" for s in version.steps.all()]
    clean_titles = {clean_title(t) for t in titles}
    headings, code_blocks = _headings_and_code(seed(name).decode())
    missing = [h for h in headings if clean_title(h) not in clean_titles]
    assert not missing, f"headings lost: {missing}"
    everything = "\n".join(stored_text)
    for block in code_blocks:
        for line in block.splitlines():
            # A comment that names a command becomes its step title ("# 1. Check API Health").
            text = re.sub(r"^(#|--|//)\s*(\d+[.)]\s+|Expected:\s*)?", "", line.strip())
            if text:
                assert text in everything, f"lost from {name}: {line!r}"


def test_all_five_seeds_import_from_the_command_line_with_a_report():
    out = StringIO()
    call_command("import_runbooks", str(SEEDS), stdout=out)
    text = out.getvalue()
    for name in SEED_NAMES:
        assert f"{name}: " in text
    assert "runbooks: 37 (37 created, 0 updated, 0 unchanged)" in text
    assert "automated: host_check 5, http_check 3, postgres_query 10, redis_check 13; dangerous: 15" in text
    assert RunbookDocument.objects.count() == 5
    assert Runbook.objects.count() == 66


def test_reimporting_the_same_documents_changes_nothing():
    call_command("import_runbooks", str(SEEDS), stdout=StringIO())
    versions = RunbookVersion.objects.count()
    out = StringIO()
    call_command("import_runbooks", str(SEEDS), stdout=out)
    assert RunbookVersion.objects.count() == versions
    assert Runbook.objects.count() == 66
    assert re.findall(r"\((\d+) created, (\d+) updated", out.getvalue()) == [("0", "0")] * 5


def test_a_changed_runbook_gets_a_new_version_and_the_others_do_not():
    name = "express-api-ops-runbook.md"
    import_document(seed(name), name=name)
    changed = (
        seed(name).decode().replace("curl -f http://localhost:3000/ready", "curl -f http://localhost:3000/healthz")
    )
    report = import_document(changed, name=name)
    statuses = {r.title: (r.status, r.version) for r in report.runbooks}
    assert statuses["Postgres unavailable"] == ("updated", 2)
    assert statuses["Excessive login lockouts"] == ("unchanged", 1)
    runbook = Runbook.objects.get(slug="express-api-ops-runbook-postgres-unavailable")
    assert [v.number for v in runbook.versions.all()] == [2, 1]
    assert step(runbook, "Confirm readiness of API").params["path"] == "/healthz"
    old = runbook.versions.get(number=1).steps.get(order=4)
    assert old.params["path"] == "/ready"


def test_a_runbook_removed_from_the_document_is_reported_and_kept():
    name = "express-api-ops-runbook.md"
    import_document(seed(name), name=name)
    before, rest = seed(name).decode().split("### Metrics endpoint failing authentication")
    shorter = before + "## Operational tasks" + rest.split("## Operational tasks")[1]
    report = import_document(shorter, name=name)
    assert report.stale == ["Metrics endpoint failing authentication"]
    assert Runbook.objects.filter(title="Metrics endpoint failing authentication").exists()


def test_import_options_set_services_and_owner(db):
    from tests.factories import ServiceFactory

    ServiceFactory(name="Express API", slug="express-api")
    out = StringIO()
    call_command(
        "import_runbooks",
        str(SEEDS / "express-api-ops-runbook.md"),
        "--service",
        "express-api",
        "--owner",
        "Platform",
        stdout=out,
    )
    runbook = Runbook.objects.get(slug="express-api-ops-runbook-postgres-unavailable")
    assert [s.slug for s in runbook.services.all()] == ["express-api"] and runbook.owner == "Platform"
    # Imported again without the options, the runbooks keep them (and no new version is made).
    call_command("import_runbooks", str(SEEDS / "express-api-ops-runbook.md"), stdout=StringIO())
    runbook.refresh_from_db()
    assert runbook.version == 1 and runbook.owner == "Platform"
