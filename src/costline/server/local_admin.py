"""The local control file: how `costline report` and `costline top` reach a running `costline serve`.

One process owns a DuckDB file, so while the server runs the commands cannot open the store. The server
writes ``<data dir>/server.json`` (mode 0600, like Jupyter's runtime files) with its URL, its process id,
its store URL and a random admin token that reaches every project, and removes it when it stops. A command
that finds the store locked reads the file, checks that the process is alive and serves the same store, and
asks the server over HTTP with the token (``Authorization: Bearer``, the project in ``X-Costline-Project``).
Only the same operating-system user can read the token; the server keeps only its SHA-256 digest.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "server.json"
#: the header naming the project an admin-token request is about
PROJECT_HEADER = "x-costline-project"


@dataclass(frozen=True, slots=True)
class RunningServer:
    url: str
    pid: int
    store_url: str
    token: str


def new_token() -> str:
    return "adm-cl-" + secrets.token_urlsafe(32)


def write_runtime_file(data_dir: Path, server: RunningServer) -> Path:
    """Write the control file readable by this user only; returns its path."""
    path = data_dir / FILE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file left by an earlier server keeps its mode through O_TRUNC: narrow it too
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"url": server.url, "pid": server.pid, "store_url": server.store_url, "token": server.token}, f)
    return path


def remove_runtime_file(data_dir: Path, pid: int) -> None:
    """Remove the control file if it is this process's (a newer server may have replaced it)."""
    found = read_runtime_file(data_dir, check_alive=False)
    if found is not None and found.pid == pid:
        with contextlib.suppress(OSError):
            (data_dir / FILE_NAME).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_runtime_file(data_dir: Path, *, check_alive: bool = True) -> RunningServer | None:
    """The running server of ``data_dir``, or None (no file, unreadable, or its process is gone)."""
    try:
        data = json.loads((data_dir / FILE_NAME).read_text("utf-8"))
        found = RunningServer(str(data["url"]), int(data["pid"]), str(data["store_url"]), str(data["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_alive and not _alive(found.pid):
        return None
    return found
