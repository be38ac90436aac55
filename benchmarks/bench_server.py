"""`changeflow serve --no-deploy` (gunicorn) as a child process: start, wait for health, measure, stop."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
from bench_db import changeflow_command, server_env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One gunicorn master (the `changeflow serve` process itself) and its workers."""

    def __init__(self, database_url: str, *, workers: int, threads: int, log_path: Path,
                 redis_url: str | None = None):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [*changeflow_command(), "serve", "--no-deploy", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", str(workers), "--threads", str(threads)]
        self._log = open(log_path, "wb")
        # A session of its own, so stop() can reach the workers even if the master is gone.
        self.process = subprocess.Popen(command, env=server_env(database_url, redis_url), stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log_path}")
            try:
                response = httpx.get(f"{self.base_url}/api/health", timeout=2.0)
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not healthy after {timeout:.0f}s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        return child_pids(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # gunicorn: graceful shutdown of the workers
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group this script created
                self.process.wait()
        self._log.close()


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in children.read_text().split()]
    except OSError:
        return []


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM: the highest resident set size the process has had, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class JobWorker:
    """One `changeflow worker` (rq over Redis): it delivers notifications, fires timers, runs slow service tasks."""

    def __init__(self, database_url: str, redis_url: str, log_path: Path, name: str, nice: int = 0):
        self.name, self.redis_url, self.log_path = name, redis_url, log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen([*changeflow_command(), "worker", "--name", name, "--nice", str(nice)],
                                        env=server_env(database_url, redis_url), stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        from redis import Redis
        from rq import Worker

        redis = Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; see {self.log_path}")
            if any(w.name == self.name for w in Worker.all(connection=redis)):
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} did not register with rq in {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
