""" "On call now" for 50 schedules after a year of shifts.

Run by hand: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/opsportal .venv/bin/python bench/oncall.py`
(works on the SQLite default too). It creates a throwaway test database with 50 schedules, each a
weekly base layer, a daily business-hours layer and an hourly follow-the-sun layer whose rotations
began a year ago, plus 100 overrides per schedule spread over that year, and measures, in the same
run:

- baseline: one query reading the 50 schedules' rows (the least any "on call now" page costs);
- on call now: the three prefetch queries and the shift arithmetic for all 50 schedules;
- walk: the same answer found by expanding every shift of the year and picking the one that
  contains now (what a naive implementation does; it grows with the age of the rotation).

It prints median milliseconds, queries and the ratio to the baseline (the machine is shared; only
ratios are comparable between runs) and checks that both methods name the same people.
"""

import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

import django

django.setup()

from datetime import time as clock  # noqa: E402

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from incidents import oncall  # noqa: E402
from incidents.models import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride  # noqa: E402

SCHEDULES, OVERRIDES, RUNS = 50, 100, 30
ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "UTC"]


def seed(now):
    users = [get_user_model().objects.create_user(f"oncall{n}") for n in range(12)]
    year_ago = (now - timedelta(days=365)).date()
    for n in range(SCHEDULES):
        schedule = Schedule.objects.create(name=f"Schedule {n}", time_zone=ZONES[n % len(ZONES)])
        layers = [
            ScheduleLayer(schedule=schedule, name="Weekly", priority=1, shift_unit="weeks", shift_length=1),
            ScheduleLayer(
                schedule=schedule,
                name="Business hours",
                priority=2,
                shift_unit="days",
                shift_length=1,
                restrict_weekdays=[0, 1, 2, 3, 4],
                restrict_start=clock(9),
                restrict_end=clock(17),
            ),
            ScheduleLayer(schedule=schedule, name="Follow the sun", priority=3, shift_unit="hours", shift_length=8),
        ]
        for layer in layers:
            layer.rotation_start = year_ago
            layer.handoff_time = clock(9)
        ScheduleLayer.objects.bulk_create(layers)
        LayerParticipant.objects.bulk_create(
            LayerParticipant(layer=layer, user=users[(n + i + j) % len(users)], position=j)
            for i, layer in enumerate(layers)
            for j in range(4)
        )
        ScheduleOverride.objects.bulk_create(
            ScheduleOverride(
                schedule=schedule,
                user=users[(n + k) % len(users)],
                starts_at=now - timedelta(days=365) + timedelta(days=3.65 * k),
                ends_at=now - timedelta(days=365) + timedelta(days=3.65 * k, hours=6),
            )
            for k in range(OVERRIDES)
        )


def measure(fn, runs=RUNS):
    times, result, queries = [], None, 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            result = fn()
            times.append((time.perf_counter() - started) * 1000)
        queries = len(captured.captured_queries)
    return statistics.median(times), queries, result


def main():
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        now = timezone.now()
        seed(now)
        year_start = now - timedelta(days=366)

        def baseline():
            return list(Schedule.objects.all())

        def now_fast():
            schedules = oncall.with_rotations(Schedule.objects.all(), now, now + timedelta(microseconds=1))
            return [(s.name, shift and shift.user.pk) for s, shift in oncall.on_call_now(schedules, now)]

        def now_walk():
            schedules = oncall.load(Schedule.objects.values("pk"), year_start, now + timedelta(seconds=1))
            out = []
            for s in schedules:
                found = [x for x in oncall.shifts(s, year_start, now + timedelta(seconds=1)) if x.start <= now < x.end]
                out.append((s.name, found[0].user.pk if found else None))
            return out

        base_ms, base_q, _ = measure(baseline)
        fast_ms, fast_q, fast = measure(now_fast)
        walk_ms, walk_q, walk = measure(now_walk, runs=3)
        assert sorted(fast) == sorted(walk), "the arithmetic and the walk disagree"
        print(f"{SCHEDULES} schedules x 3 layers, a year of shifts, {OVERRIDES} overrides each, on {connection.vendor}")
        print(f"{'method':36} {'queries':>7} {'median ms':>10} {'x baseline':>11}")
        for name, ms, q in [
            ("baseline: read 50 schedule rows", base_ms, base_q),
            ("on call now (prefetch + arithmetic)", fast_ms, fast_q),
            ("walk a year of shifts", walk_ms, walk_q),
        ]:
            print(f"{name:36} {q:>7} {ms:>10.2f} {ms / base_ms:>11.1f}")
        print(f"walk / on call now: {walk_ms / fast_ms:.0f}x")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
