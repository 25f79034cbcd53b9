"""host_check: disk and memory use of the host the worker runs on (what `df -h` and `free -h` show).

It measures the worker's own machine: to check another host, run a worker there consuming the
runbooks queue. Warning at 80 % used, critical at 90 %, unless the step says otherwise.
"""

import shutil
import socket
from pathlib import Path

from runbooks.actions.base import (
    Action,
    ActionError,
    CheckResult,
    ParamsError,
    Target,
    number,
    only,
    table,
    threshold_status,
    worst,
)

# Filesystems that hold data; proc, tmpfs, cgroup and friends are left out like `df -x tmpfs` would.
_REAL_FILESYSTEMS = {
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "zfs",
    "overlay",
    "f2fs",
    "jfs",
    "reiserfs",
    "vfat",
    "nfs",
    "nfs4",
}
MEMINFO = Path("/proc/meminfo")
MOUNTS = Path("/proc/mounts")


def validate(params: dict) -> dict:
    only(params, {"check", "paths", "warn_percent", "critical_percent"})
    check = params.get("check")
    if check not in {"disk", "memory"}:
        raise ParamsError("check must be disk or memory.")
    clean = {
        "check": check,
        "warn_percent": number(params, "warn_percent", 80, minimum=1, maximum=100),
        "critical_percent": number(params, "critical_percent", 90, minimum=1, maximum=100),
    }
    if clean["warn_percent"] > clean["critical_percent"]:
        raise ParamsError("warn_percent must not be above critical_percent.")
    if "paths" in params:
        paths = params["paths"]
        if (
            check != "disk"
            or not isinstance(paths, list)
            or not all(isinstance(p, str) and p.startswith("/") for p in paths)
        ):
            raise ParamsError("paths is a list of absolute paths, for the disk check.")
        clean["paths"] = paths
    return clean


def describe(params: dict) -> str:
    return params["check"] + (" " + ", ".join(params["paths"]) if params.get("paths") else "")


def _mount_points() -> list[str]:
    try:
        lines = MOUNTS.read_text().splitlines()
    except OSError:
        return ["/"]
    seen, points = set(), []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2] in _REAL_FILESYSTEMS and fields[0] not in seen:
            seen.add(fields[0])
            points.append(fields[1].replace("\\040", " "))
    return points or ["/"]


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f}G"


def _disk(p: dict) -> CheckResult:
    rows, figures, statuses = [], {}, []
    for path in p.get("paths") or _mount_points():
        try:
            usage = shutil.disk_usage(path)
        except OSError as exc:
            raise ActionError(f"Cannot read disk usage of {path}: {exc.strerror}") from None
        percent = round(100 * usage.used / usage.total, 1) if usage.total else 0.0
        statuses.append(threshold_status(percent, p["warn_percent"], p["critical_percent"]))
        figures[path] = {"used_percent": percent, "total_bytes": usage.total, "free_bytes": usage.free}
        rows.append([path, _gib(usage.total), _gib(usage.used), _gib(usage.free), f"{percent:g}%"])
    fullest = max(figures.items(), key=lambda item: item[1]["used_percent"])
    summary = f"Disk {fullest[0]} {fullest[1]['used_percent']:g} % used" + (
        f" (fullest of {len(figures)} filesystems)" if len(figures) > 1 else ""
    )
    return CheckResult(
        worst(*statuses),
        f"{summary} on {socket.gethostname()}",
        figures={"host": socket.gethostname(), "filesystems": figures, "max_used_percent": fullest[1]["used_percent"]},
        output=table(["Mounted on", "Size", "Used", "Avail", "Use%"], rows),
    )


def _memory(p: dict) -> CheckResult:
    try:
        info = {
            key: int(value.split()[0]) * 1024
            for key, value in (line.split(":", 1) for line in MEMINFO.read_text().splitlines() if ":" in line)
        }
        total, available = info["MemTotal"], info["MemAvailable"]
    except (OSError, KeyError, ValueError):
        raise ActionError("The memory check reads /proc/meminfo, which this worker's host does not provide.") from None
    used = total - available
    percent = round(100 * used / total, 1) if total else 0.0
    swap_total, swap_free = info.get("SwapTotal", 0), info.get("SwapFree", 0)
    rows = [["Mem", _gib(total), _gib(used), _gib(available), f"{percent:g}%"]]
    if swap_total:
        swap_used = swap_total - swap_free
        rows.append(
            ["Swap", _gib(swap_total), _gib(swap_used), _gib(swap_free), f"{100 * swap_used / swap_total:.1f}%"]
        )
    return CheckResult(
        threshold_status(percent, p["warn_percent"], p["critical_percent"]),
        f"Memory {percent:g} % used ({_gib(used)} of {_gib(total)}) on {socket.gethostname()}",
        figures={
            "host": socket.gethostname(),
            "used_percent": percent,
            "total_bytes": total,
            "available_bytes": available,
            "swap_used_bytes": swap_total - swap_free,
        },
        output=table(["", "Total", "Used", "Available", "Use%"], rows),
    )


def run(params: dict, target: Target, timeout: float) -> CheckResult:
    params = validate(params)
    return _disk(params) if params["check"] == "disk" else _memory(params)


ACTION = Action(
    name="host_check",
    label="Host check",
    run=run,
    validate=validate,
    describe=describe,
)
