"""How commands are recognised and classified, how documents are cut up, and what imports refuse."""

import pytest

from runbooks.actions.postgres import UnsafeSQL, check_read_only
from runbooks.importer import ImportRefused, import_document
from runbooks.importer.commands import recognise_shell, shell_units, sql_units
from runbooks.importer.structure import parse_document
from runbooks.models import Runbook, RunbookDocument, RunbookVersion


@pytest.mark.parametrize(
    ("command", "action", "params"),
    [
        ("curl http://localhost:3001/health", "http_check", {"path": "/health", "method": "GET"}),
        ("curl -f http://localhost:3000/ready", "http_check", {"path": "/ready", "method": "GET"}),
        ("curl -sS $API_URL/healthz | jq .status", "http_check", {"path": "/healthz", "method": "GET"}),
        (
            "curl -I https://status.example.org/health",
            "http_check",
            {"url": "https://status.example.org/health", "method": "HEAD"},
        ),
        ('psql $DATABASE_URL -c "SELECT 1;"', "postgres_query", {"check": "select_1"}),
        ('psql "$DATABASE_URL" --command="SELECT now()"', "postgres_query", {"sql": "SELECT now()"}),
        ("redis-cli ping", "redis_check", {"check": "ping"}),
        ("redis-cli -h cache -p 6380 -n 2 DBSIZE", "redis_check", {"check": "dbsize", "db": 2}),
        ("redis-cli INFO", "redis_check", {"check": "info"}),
        ("redis-cli INFO memory", "redis_check", {"check": "info_memory"}),
        ("redis-cli INFO stats | grep hit", "redis_check", {"check": "hit_rate"}),
        ('redis-cli KEYS "session:*" | wc -l', "redis_check", {"check": "count_keys", "pattern": "session:*"}),
        ("redis-cli TTL login_attempt:42", "redis_check", {"check": "ttl", "key": "login_attempt:42"}),
        ("df -h", "host_check", {"check": "disk"}),
        ("df -h /var/lib/postgresql", "host_check", {"check": "disk", "paths": ["/var/lib/postgresql"]}),
        ("free -h", "host_check", {"check": "memory"}),
    ],
)
def test_recognised_commands_become_actions(command, action, params):
    recognised = recognise_shell(command)
    assert (recognised.action, recognised.params, recognised.safety) == (action, params, "read_only")


@pytest.mark.parametrize(
    "command",
    [
        "redis-cli FLUSHALL",
        "redis-cli -n 0 FLUSHDB",
        "redis-cli DEL session:1",
        'redis-cli KEYS "gemini:*" | xargs redis-cli DEL',
        "redis-cli CONFIG SET maxmemory 0",
        "psql $DATABASE_URL -c \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'idle'\"",
        'psql $DATABASE_URL -c "DELETE FROM sessions"',
        'psql $DATABASE_URL -c "UPDATE users SET active = false"',
        'psql $DATABASE_URL -c "DROP TABLE audit"',
        'psql $DATABASE_URL -c "TRUNCATE jobs"',
        'psql $DATABASE_URL -c "REINDEX DATABASE app"',
        'psql $DATABASE_URL -c "VACUUM FULL orders"',
        "psql $DATABASE_URL < backup.sql",
        "kill -9 4242",
        "kill -HUP $(cat /var/run/gunicorn.pid)",
        "pkill -f worker",
        "sudo systemctl restart gunicorn",
        "pm2 restart all",
        "docker compose restart api",
        "kubectl rollout restart deployment/api",
        "rm -rf /var/cache/app",
        'find /var/log -name "*.log" -mtime +30 -delete',
        "curl -X DELETE http://localhost:3001/api/queue/jobs",
    ],
)
def test_destructive_commands_are_dangerous_and_never_automated(command):
    recognised = recognise_shell(command)
    assert recognised.safety == "dangerous" and recognised.action == ""


@pytest.mark.parametrize(
    ("command", "safety"),
    [
        ("curl -X POST http://localhost:3001/api/queue/pause-all", "change"),
        ('psql $DATABASE_URL -c "VACUUM ANALYZE;"', "change"),
        ("pg_dump $DATABASE_URL > backup.sql", "change"),
        ("git pull origin main", "change"),
        ("curl http://localhost:3001/api/queue/stats", "read_only"),
        ("tail -n 100 /var/log/app.log | grep -i error", "read_only"),
        ('psql <DATABASE_URL> -c "select now()"', "read_only"),
    ],
)
def test_other_commands_stay_manual_with_a_safety_class(command, safety):
    assert recognise_shell(command).safety == safety


def test_a_block_with_a_check_and_a_destructive_command_is_split_into_separate_steps():
    units = shell_units("# Redis\nredis-cli PING\nredis-cli FLUSHALL\n")
    assert [(u.title, u.recognised.action, u.recognised.safety) for u in units] == [
        ("Redis: redis-cli PING", "redis_check", "read_only"),
        ("Redis: redis-cli FLUSHALL", "", "dangerous"),
    ]


def test_comments_name_steps_and_expected_lines_attach_to_them():
    units = shell_units("# 3. Check Redis Connection\nredis-cli ping\n# Expected: PONG\n\n# Deploy\ngit pull\nnpm ci\n")
    assert [(u.title, u.expected, u.numbered) for u in units] == [
        ("Check Redis Connection", "PONG", True),
        ("Deploy", "", False),
    ]
    assert units[1].command == "git pull\nnpm ci"


def test_continuation_lines_stay_as_written():
    units = shell_units('grep "sale.transition" /var/log/app.log \\\n  | jq .\n')
    assert units[0].command == 'grep "sale.transition" /var/log/app.log \\\n  | jq .'


def test_sql_blocks_split_into_statements_titled_by_their_comments():
    units = sql_units("-- Active\nSELECT count(*) FROM pg_stat_activity;\n\n-- Kill\nSELECT pg_terminate_backend(1);\n")
    assert [(u.title, u.recognised.action, u.recognised.safety) for u in units] == [
        ("Active", "postgres_query", "read_only"),
        ("Kill", "", "dangerous"),
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select now()",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SHOW max_connections",
        "SELECT 'DELETE' AS word",
    ],
)
def test_read_only_sql_is_accepted(sql):
    assert check_read_only(sql)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DELETE FROM t", "starts with DELETE"),
        ("UPDATE t SET a = 1", "starts with UPDATE"),
        ("SELECT 1; SELECT 2", "Only one statement"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "contains DELETE"),
        ("SELECT * FROM t FOR UPDATE", "contains UPDATE"),
        ("SELECT * INTO copy FROM t", "contains INTO"),
        ("SELECT pg_terminate_backend(42)", "pg_terminate_backend"),
        ('SELECT "pg_cancel_backend"(42)', "pg_cancel_backend"),
        ("SELECT set_config('statement_timeout', '0', false)", "set_config"),
        ("SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
        ("SELECT nextval('orders_id_seq')", "nextval"),
        ("EXPLAIN ANALYZE SELECT 1", "contains ANALYZE"),
        ("VACUUM FULL", "starts with VACUUM"),
        ('SELECT U&"\\0070g_terminate_backend"(1)', "U&"),
        ("", "No SQL"),
    ],
)
def test_sql_that_is_not_read_only_is_refused_with_the_reason(sql, reason):
    with pytest.raises(UnsafeSQL, match=reason.replace("(", r"\(")):
        check_read_only(sql)


def test_a_document_without_h2_is_one_runbook():
    doc = parse_document("# Restart the payments worker\n\n1. Check `df -h`\n2. Page the owner\n", "payments")
    assert [r.title for r in doc.runbooks] == ["Restart the payments worker"]
    assert [s.title for s in doc.runbooks[0].steps] == ["Check df -h", "Page the owner"]


def test_a_document_of_several_h1_is_titled_by_its_file():
    doc = parse_document("# One\n\n- a\n\n# Two\n\n- b\n", "team-notes")
    assert doc.title == "Team notes" and [r.title for r in doc.runbooks] == ["One", "Two"]


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Just some text.\n\n- a list\n- without headings\n", "has no headings"),
        (bytes(range(256)) * 20, "binary file"),
        (b"\xff\xfe# T\x00i\x00t\x00l\x00e\x00", "binary file"),
        ("# Caf\u00e9\n\n- ok\n".encode("latin-1"), "not UTF-8 text"),
        (b"   \n\n", "is empty"),
        (b"# Title\n\n" + b"- step\n" * 800_000, "at most 1.0 MB"),
    ],
)
def test_bad_documents_are_refused_clearly_and_nothing_is_written(data, message):
    with pytest.raises(ImportRefused, match=message):
        import_document(data, name="bad.md")
    assert RunbookDocument.objects.count() == 0 and Runbook.objects.count() == 0


@pytest.mark.django_db
def test_a_five_megabyte_file_is_refused(settings):
    data = b"# Big\n\n" + b"x" * (5 * 1024 * 1024)
    with pytest.raises(ImportRefused, match=r"5\.0 MB; runbook documents may be at most 1\.0 MB"):
        import_document(data, name="big.md")


@pytest.mark.django_db
def test_a_runbook_that_cannot_be_stored_leaves_the_whole_document_unimported():
    huge = "\n".join(f"Line {n} of a very long reference table that nobody should paste here." for n in range(3000))
    text = f"# Doc\n\n## First\n\n- a\n\n## Second\n\n{huge}\n\n- b\n"
    with pytest.raises(ImportRefused, match=r"runbook 'Second'.*longer than 200000 characters"):
        import_document(text, name="doc.md")
    assert Runbook.objects.count() == 0 and RunbookVersion.objects.count() == 0 and RunbookDocument.objects.count() == 0


def test_sql_blocks_are_cut_where_postgresql_cuts_them():
    """A backslash does not escape a quote in standard SQL: a tokenizer that thinks it does would
    glue the terminate onto the harmless SELECT (or cut a string in two)."""
    from runbooks.importer.commands import split_sql

    block = "-- look first\nSELECT '\\';  -- a lone backslash\nSELECT pg_terminate_backend(42);\nSELECT $$a;b$$;"
    assert split_sql(block) == [
        "-- look first\nSELECT '\\';  -- a lone backslash",
        "SELECT pg_terminate_backend(42);",
        "SELECT $$a;b$$;",
    ]
