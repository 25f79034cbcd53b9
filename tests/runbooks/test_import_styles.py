"""Runbooks as other teams write them (fixtures under fixtures/, one per style): the shape of each
document, its alert names, every code line kept, and the safety of every command."""

import re
from collections import Counter
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from runbooks.importer import import_document
from runbooks.importer.commands import recognise_shell, shell_units
from runbooks.importer.structure import parse_document
from runbooks.models import Runbook

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = sorted(p.name for p in FIXTURES.glob("*.md"))


def parsed(name: str):
    return parse_document((FIXTURES / name).read_text(), Path(name).stem)


# (fixture, runbooks, steps by safety, alert names found, unclassified commands)
TABLE = [
    ("alert-collection.md", 5, {"read_only": 4, "change": 1, "dangerous": 1}, 7, 1),
    ("aws-cli.md", 1, {"read_only": 1, "change": 1, "dangerous": 4}, 0, 0),
    ("decoration.md", 1, {"read_only": 2, "dangerous": 1}, 0, 0),
    ("incident-playbooks.md", 2, {"read_only": 5, "dangerous": 5}, 0, 0),
    ("kubectl-helm.md", 1, {"read_only": 2, "dangerous": 4}, 0, 0),
    ("one-runbook-template.md", 1, {"read_only": 5, "change": 2, "dangerous": 1}, 1, 0),
    ("parameters.md", 1, {"read_only": 5, "dangerous": 1}, 1, 0),
    ("scripts.md", 3, {"read_only": 1, "dangerous": 2}, 0, 0),
    ("sql-runbook.md", 1, {"read_only": 4, "dangerous": 5}, 0, 0),
]


def summary(name: str) -> tuple:
    doc = parsed(name)
    safety = Counter(str(s.safety) for r in doc.runbooks for s in r.steps)
    alerts = sum(len(r.alert_names) for r in doc.runbooks)
    unclassified = sum(len(f.unclassified) for f in doc.findings.values())
    return (name, len(doc.runbooks), dict(safety), alerts, unclassified)


def test_the_per_fixture_table(capsys):
    rows = [summary(name) for name in NAMES]
    with capsys.disabled():
        print("\nfixture | runbooks | steps by safety | alert names | unclassified")
        for name, runbooks, safety, alerts, unclassified in rows:
            by_safety = ", ".join(f"{k} {v}" for k, v in sorted(safety.items()))
            print(f"{name} | {runbooks} | {by_safety} | {alerts} | {unclassified}")
    assert rows == TABLE


@pytest.mark.parametrize(
    ("name", "alerts"),
    [
        (
            "alert-collection.md",
            {
                "Database pool exhaustion": ["StorefrontPoolExhaustion"],  # a list item
                "Cache hit rate low": ["StorefrontCacheHitRateLow"],  # a key/value table
                # a table column, then an `Alert:` line
                "Disk space": ["StorefrontDiskAlmostFull", "StorefrontDiskFull", "StorefrontInodesLow"],
                "StorefrontQueueBacklog: jobs waiting": ["StorefrontQueueBacklog"],  # the heading
                "Café réservations en échec": ["RéservationÉchouée"],
            },
        ),
        ("one-runbook-template.md", {"Checkout database pool exhausted": ["CheckoutDbPoolExhausted"]}),  # front matter
    ],
)
def test_alert_names_are_found_in_every_form(name, alerts):
    doc = parsed(name)
    assert {r.title: r.alert_names for r in doc.runbooks} == alerts


def test_severity_is_read_from_lists_tables_and_front_matter():
    assert [r.severity for r in parsed("alert-collection.md").runbooks] == ["SEV1", "SEV3", "SEV2", "", ""]
    assert parsed("one-runbook-template.md").runbooks[0].severity == "SEV1"


@pytest.mark.parametrize(
    ("name", "titles"),
    [
        # Template sections under one title: one runbook, not one per section.
        ("one-runbook-template.md", ["Checkout database pool exhausted"]),
        ("aws-cli.md", ["RDS and ECS runbook"]),
        ("sql-runbook.md", ["PostgreSQL runbook"]),
        # Playbooks with Signal / Containment / Mitigation / Verification: one runbook per playbook.
        ("incident-playbooks.md", ["Playbook: cache stampede", "Playbook: disk filling up on the log host"]),
        # Banners (`# ====`) and empty headings make no runbook.
        ("decoration.md", ["Nightly export"]),
    ],
)
def test_the_document_shape(name, titles):
    assert [r.title for r in parsed(name).runbooks] == titles


def test_playbook_sections_map_to_template_kinds():
    playbook = parsed("incident-playbooks.md").runbooks[0]
    assert [(s.title, s.kind) for s in playbook.sections] == [
        ("Signal", "context"),
        ("Containment", "safe_actions"),
        ("Mitigation", "safe_actions"),
        ("Verification", "diagnostics"),
    ]


def test_reference_sections_of_one_runbook_stay_with_the_document():
    doc = parsed("one-runbook-template.md")
    assert [s.title for s in doc.sections] == ["References"]
    assert all("wiki" not in s.title for s in doc.runbooks[0].steps)


def _code_lines(text: str) -> list[str]:
    root = SyntaxTreeNode(MarkdownIt("commonmark").enable("table").parse(text))
    lines: list[str] = []

    def walk(node):
        if node.type == "fence":
            lines.extend(ln.strip() for ln in node.content.splitlines() if ln.strip())
        for child in node.children:
            walk(child)

    walk(root)
    return lines


@pytest.mark.parametrize("name", NAMES)
def test_every_code_line_is_kept(name):
    doc = parsed(name)
    stored = "\n".join(f"{s.title}\n{s.command}\n{s.instructions}" for r in doc.runbooks for s in r.steps) + "\n".join(
        s.body for r in doc.runbooks for s in r.sections
    )
    for line in _code_lines((FIXTURES / name).read_text()):
        text = re.sub(r"^(#|--)\s*", "", line)
        assert text in stored, f"lost from {name}: {line!r}"


def test_multi_line_psql_stays_one_step_with_its_where_clause():
    template = parsed("one-runbook-template.md").runbooks[0]
    kill = next(s for s in template.steps if "pg_terminate_backend" in s.command)
    assert "AND now() - state_change > interval '10 minutes';\"" in kill.command
    assert kill.safety == "dangerous" and kill.kind == "manual"
    oldest = next(s for s in template.steps if "xact_start" in s.command)
    assert oldest.action == "postgres_query" and "LIMIT 10" in oldest.params["sql"]


def test_scripts_stay_whole_and_take_their_most_dangerous_line():
    steps = {r.title: r.steps for r in parsed("scripts.md").runbooks}
    (rotate,) = steps["Rotate the worker"]
    assert rotate.command.startswith("#!/bin/bash\n") and rotate.title == "Drain and restart the worker"
    assert rotate.safety == "dangerous"
    (locks,) = steps["Clear stuck locks"]
    assert locks.command.startswith("read -p") and locks.command.rstrip().endswith("fi")
    assert locks.safety == "dangerous"
    assert not any(s.title.startswith("!") for r in steps.values() for s in r)


# Every command the issue names, and the read-only diagnostics that must not be taken for writes.
SAFETY = [
    ("aws rds modify-db-instance --db-instance-identifier db --apply-immediately", "dangerous"),
    ("aws ec2 stop-instances --instance-ids i-0abc", "dangerous"),
    ("aws ecs update-service --cluster prod --service api --force-new-deployment", "dangerous"),
    ("aws autoscaling set-desired-capacity --auto-scaling-group-name asg --desired-capacity 6", "change"),
    ("aws autoscaling set-desired-capacity --auto-scaling-group-name asg --desired-capacity 0", "dangerous"),
    ("terraform apply -auto-approve", "dangerous"),
    ("docker system prune -a", "dangerous"),
    (": > logs/app.log", "dangerous"),
    ("> /var/log/app.log", "dangerous"),
    ("npm cache clean --force", "dangerous"),
    ("redis-cli --scan --pattern 'x:*' | xargs redis-cli del", "dangerous"),
    ('psql "$DATABASE_URL" -c "\nALTER SYSTEM SET work_mem = \'64MB\';\nSELECT pg_reload_conf();"', "dangerous"),
    ('psql "$DATABASE_URL" -c "\nCREATE INDEX CONCURRENTLY i ON items (price);"', "dangerous"),
    ("pg_archivecleanup /wal 000000010000003A00000042", "dangerous"),
    ("pg_ctl promote -D /var/lib/postgresql/15/main", "dangerous"),
    ("kubectl set env deployment/api DEBUG=1", "dangerous"),
    ("python -m app.jobs.replay_failed --since 1h", "change"),
    ("kubectl scale deployment/api --replicas=0", "dangerous"),
    ("kubectl scale deployment/api --replicas 0 -n x", "dangerous"),
    ("kubectl scale deployment/api --replicas=3", "change"),
    ("kubectl edit deployment/api", "dangerous"),
    ("kubectl patch deployment api -p '{}'", "dangerous"),
    ("helm rollback payments 41", "dangerous"),
    ("pg_restore -c -d orders /backups/orders.dump", "dangerous"),
    ("kubectl rollout restart deployment/api", "dangerous"),
    ("sudo systemctl restart nginx", "dangerous"),
    ("some-vendor-tool --fix everything", "change"),
    # Reads stay reads.
    ('psql "$DATABASE_URL" -c "SELECT id FROM items WHERE price < 10"', "read_only"),
    ("kubectl logs deploy/payments-api --tail=200", "read_only"),
    ("kubectl get pods -n payments", "read_only"),
    ("kubectl describe pod <pod-name> -n ${NAMESPACE}", "read_only"),
    ("kubectl top pods", "read_only"),
    ("aws rds describe-db-instances", "read_only"),
    ("aws ecs list-tasks --cluster prod", "read_only"),
    ("aws cloudwatch get-metric-statistics --namespace AWS/RDS", "read_only"),
    ("helm history payments", "read_only"),
    ("df -h /var/log", "read_only"),
    ("free -m", "read_only"),
    ("ps aux | grep gunicorn", "read_only"),
    ("tail -n 200 /var/log/app/error.log | grep -i timeout", "read_only"),
    ("redis-cli INFO stats | grep keyspace", "read_only"),
    ("curl -s 'http://prometheus:9090/api/v1/query?query=up'", "read_only"),
    ('kubectl exec -it db-0 -- psql -U app -c "SELECT 1"', "read_only"),
    ('kubectl exec -it db-0 -- psql -U app -c "DELETE FROM jobs"', "dangerous"),
]


@pytest.mark.parametrize(("command", "safety"), SAFETY)
def test_command_safety_table(command, safety):
    assert recognise_shell(command).safety == safety


def test_a_command_no_rule_knows_is_reported_as_unclassified():
    assert recognise_shell("some-vendor-tool --fix everything").unknown == ["some-vendor-tool --fix everything"]
    assert recognise_shell("kubectl get pods").unknown == []


def test_every_mutating_command_in_the_fixtures_is_gated_and_no_read_is_dangerous():
    reads = re.compile(r"^(kubectl (get|describe|logs|top)|aws \w+ (describe|list|get)-|df |du |redis-cli INFO|tail )")
    for name in NAMES:
        for runbook in parsed(name).runbooks:
            for step in runbook.steps:
                first = step.command.strip().splitlines()[0] if step.command else ""
                if reads.match(first) and "\n" not in step.command.strip():
                    assert step.safety != "dangerous", (name, step.command)
                if re.search(
                    r"modify-|stop-|--force-new|apply|prune|: >|cache clean|xargs|ALTER|CREATE|promote", first
                ):
                    assert step.safety != "read_only", (name, step.command)


def test_recognisers_prometheus_api_and_kubectl_exec():
    prom = recognise_shell("curl -s 'http://prometheus:9090/api/v1/query?query=rate(http_requests_total%5B5m%5D)'")
    assert (prom.action, prom.params) == ("prometheus_query", {"query": "rate(http_requests_total[5m])"})
    encoded = recognise_shell("curl -G http://prom:9090/api/v1/query --data-urlencode 'query=up == 0'")
    assert (encoded.action, encoded.params) == ("prometheus_query", {"query": "up == 0"})
    redis = recognise_shell("kubectl exec -it deploy/redis -n x -- redis-cli INFO stats")
    assert (redis.action, redis.params) == ("redis_check", {"check": "hit_rate"})


def test_placeholders_become_parameters_of_the_step():
    # A read-only query with a blank is a check whose blank is a run parameter (see test_run_parameters:
    # it never runs unfilled); as written, it is never what runs.
    (sql,) = [s for s in parsed("sql-runbook.md").runbooks[0].steps if "[PID]" in s.command]
    assert (sql.kind, sql.action, sql.params) == (
        "automated",
        "postgres_query",
        {"sql": "SELECT * FROM pg_stat_activity WHERE pid = [PID]"},
    )
    assert sql.parameters == [{"name": "pid", "written": "[PID]", "field": "sql", "context": "sql"}]
    units = shell_units("kubectl logs <pod-name> -n ${NAMESPACE} | grep -i error\n")
    assert units[0].command == "kubectl logs <pod-name> -n ${NAMESPACE} | grep -i error"
    assert units[0].recognised.safety == "read_only"


@pytest.mark.django_db
def test_the_import_report_shows_alerts_sections_steps_and_unclassified_commands():
    report = import_document((FIXTURES / "alert-collection.md").read_bytes(), name="alert-collection.md")
    text = "\n".join(report.lines())
    assert "alerts: StorefrontPoolExhaustion (list)" in text
    assert "StorefrontDiskAlmostFull (table), StorefrontDiskFull (table), StorefrontInodesLow (line)" in text
    assert "unclassified: python -m app.jobs.replay_failed --since 1h" in text
    assert "steps: 1 read_only" in text or "read_only 1" in text
    runbook = Runbook.objects.get(title="Café réservations en échec")
    assert runbook.alert_names == ["RéservationÉchouée"]


@pytest.mark.django_db
def test_the_upload_page_and_the_api_show_the_report(client, admin_user, api_for):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(admin_user)
    data = (FIXTURES / "alert-collection.md").read_bytes()
    page = client.post("/runbooks/import/", {"files": [SimpleUploadedFile("alert-collection.md", data)]})
    html = page.content.decode()
    assert page.status_code == 200
    assert "StorefrontDiskAlmostFull (table), StorefrontDiskFull (table), StorefrontInodesLow (line)" in html
    assert "Not recognised as reads" in html and "<code>python -m app.jobs.replay_failed --since 1h</code>" in html
    assert "manual dangerous 1" in html

    upload = SimpleUploadedFile("scripts.md", (FIXTURES / "scripts.md").read_bytes())
    body = api_for("admin").post("/api/runbooks/import/", {"file": upload}, format="multipart").json()
    assert body["shape"] == "collection"
    rotate = next(r for r in body["runbooks"] if r["title"] == "Rotate the worker")
    assert rotate["steps_by_kind_and_safety"] == {"manual dangerous": 1}
    assert rotate["alert_names"] == [] and rotate["sections"] == ["Rotate the worker"]
