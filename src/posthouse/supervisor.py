"""The parent of ``posthouse api --workers N``: uvicorn's supervisor, heard.

uvicorn restarts an api process that died or stopped answering its health check, but
says so at info level, which ``posthouse api`` does not show, and without the cause. An
operator needs to see every such death: each is a request cut off mid-way.
"""

import logging
import signal

import uvicorn
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("posthouse.api")


def _cause(exitcode: int | None, *, was_running: bool) -> str:
    if was_running:
        return "stopped answering its health check and was killed"
    if exitcode is not None and exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


class Supervisor(Multiprocess):
    def keep_subprocess_alive(self) -> None:
        before = list(self.processes)
        running = {id(process) for process in before if process.process.is_alive()}
        super().keep_subprocess_alive()
        for old, new in zip(before, self.processes, strict=True):
            if new is not old:
                log.warning(
                    "api process %s %s; started process %s in its place",
                    old.pid,
                    _cause(old.exitcode, was_running=id(old) in running),
                    new.pid,
                )


def run(config: uvicorn.Config) -> None:
    """What ``uvicorn.run`` does for several workers, with our supervisor."""
    Supervisor(config, sockets=[config.bind_socket()]).run()
