"""Where the CPU went during the load: gunicorn workers, job workers, PostgreSQL, the client, the machine.

Read from /proc (Linux only): a process's utime+stime, and the machine-wide counters of /proc/stat.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def machine_ticks() -> tuple[int, int, int]:
    """(busy, total, steal) jiffies over all cores from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
    return total - idle - steal, total, steal


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this (client) process
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSnapshot:
    workers: dict[int, float]
    postgres: dict[int, float]
    client: float
    machine: tuple[int, int, int]
    job_workers: dict[int, float]

    @classmethod
    def take(cls, worker_pids: list[int], job_worker_pids: list[int] = ()) -> "CpuSnapshot":
        return cls({p: process_cpu_seconds(p) for p in worker_pids},
                   {p: process_cpu_seconds(p) for p in postgres_pids()},
                   own_cpu_seconds(), machine_ticks(),
                   {p: process_cpu_seconds(p) for p in job_worker_pids})


def cpu_breakdown(before: CpuSnapshot, after: CpuSnapshot) -> dict:
    """CPU seconds spent by each party between two snapshots, and how busy the machine was."""
    busy, total, steal = (a - b for a, b in zip(after.machine, before.machine, strict=True))
    parts = {
        "workers_s": sum(v - before.workers.get(p, 0.0) for p, v in after.workers.items()),
        "postgres_s": sum(v - before.postgres.get(p, 0.0) for p, v in after.postgres.items()),
        "client_s": after.client - before.client,
        "job_workers_s": sum(v - before.job_workers.get(p, 0.0) for p, v in after.job_workers.items()),
    }
    return {
        **parts,
        "other_s": max(0.0, busy / TICKS - sum(parts.values())),  # anything else on the machine
        "machine_busy_pct": 100.0 * busy / total if total else 0.0,
        "machine_steal_pct": 100.0 * steal / total if total else 0.0,
    }
