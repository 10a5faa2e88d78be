"""posthouse's own commands as subprocesses, for the fault tests: configured only through
the environment, each in an empty directory (so no .env is read), logging to a file."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from posthouse.config import Settings
from tests.smtp_server import free_port

POSTHOUSE = str(Path(sys.executable).with_name("posthouse"))


def environment(settings: Settings, **env: str) -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("POSTHOUSE_")}
    variables.update(
        POSTHOUSE_DATABASE_URL=settings.database_url,
        POSTHOUSE_DELIVERY_URL=settings.delivery_url,
        POSTHOUSE_REQUIRE_VERIFIED_DOMAINS="false",
        POSTHOUSE_RATE_LIMIT_PER_IP="0",
        POSTHOUSE_RATE_LIMIT_PER_KEY="0",
        **env,
    )
    return variables


class Process:
    def __init__(self, args: list[str], env: dict[str, str], directory: Path, name: str) -> None:
        self.log = directory / f"{name}.log"
        directory.joinpath(name).mkdir(exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [POSTHOUSE, *args],
                env=env,
                cwd=directory / name,
                stderr=log,
                stdout=log,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        """SIGKILL to the process and any children it started (uvicorn's)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, within: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(within)


class WorkerProcess(Process):
    """``posthouse worker``."""

    def __init__(self, settings: Settings, directory: Path, name: str, **env: str) -> None:
        variables = environment(
            settings, POSTHOUSE_WORKER_POLL_SECONDS="0.05", POSTHOUSE_HELO_NAME=name, **env
        )
        super().__init__(["worker"], variables, directory, name)

    async def started(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while "started" not in self.text():
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            await asyncio.sleep(0.05)


class ApiProcess(Process):
    """``posthouse api`` on a free loopback port."""

    def __init__(
        self, settings: Settings, directory: Path, name: str, *, workers: int = 1, **env: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["api", "--port", str(self.port), "--workers", str(workers)]
        super().__init__(args, environment(settings, **env), directory, name)

    async def started(self, within: float = 30.0) -> None:
        """Wait until /healthz answers 200."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while True:
                assert self.process.poll() is None, self.text()
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, self.text()
                await asyncio.sleep(0.1)
