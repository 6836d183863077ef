"""The repository's Node test servers (`tests/servers/`), started the way the Rust interop
tests start them (`tests/support/servers.rs`): `npm ci` once when `node_modules` is missing or
was installed from another lock file, one JSON line on stdout when ready, exit when stdin
closes. Talks to their test routes with the standard library only, never with the clients
under test."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

SERVERS_DIR = Path(__file__).resolve().parents[3] / "tests" / "servers"
READY_TIMEOUT_S = 15.0
# Shared with tests/support/servers.rs: what node_modules was installed from.
STAMP = ".tokenflow-lock"
STAGING_PREFIX = ".staging-"

BASIC_CLIENT = ("basic-client", "basic-secret")
POST_CLIENT = ("post-client", "post-secret")
SPECIAL_CLIENT = ("special-client", "s3cr:t/+%&= x")
JOE = ("joe", "pw-joe")
PIN_USER = ("1234/joe.bloggs@acme.com", "secret1234")

_install_lock = threading.Lock()
_installed = False


def _program(var: str, name: str) -> str:
    path = os.environ.get(var) or shutil.which(name)
    if not path:
        raise RuntimeError(
            f"`{name}` was not found on PATH (or set {var}): the tests need Node.js 20 or "
            "newer with npm"
        )
    return path


def ensure_node_modules() -> None:
    """Installs the servers' packages with `npm ci` into a staging directory and renames the
    result into place, as the Rust helper does, so concurrent runs never see half a tree."""
    global _installed
    with _install_lock:
        if _installed:
            return
        lock = (SERVERS_DIR / "package-lock.json").read_bytes()
        target = SERVERS_DIR / "node_modules"
        stamp = target / STAMP
        if stamp.is_file() and stamp.read_bytes() == lock:
            _installed = True
            return
        npm = _program("NPM", "npm")
        staging = SERVERS_DIR / f"{STAGING_PREFIX}{os.getpid()}-{time.time_ns()}"
        staging.mkdir()
        try:
            for name in ("package.json", "package-lock.json"):
                shutil.copy(SERVERS_DIR / name, staging / name)
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging,
                stdin=subprocess.DEVNULL,
                check=True,
            )
            installed = staging / "node_modules"
            (installed / STAMP).write_bytes(lock)
            if not (stamp.is_file() and stamp.read_bytes() == lock):
                if target.exists():
                    target.rename(staging / "old_node_modules")
                installed.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _installed = True


class RunningServer:
    """A server process; `stop()` ends it (closing its stdin first)."""

    def __init__(self, script: str, options: Dict[str, Any]) -> None:
        ensure_node_modules()
        self.script = script
        self.process = subprocess.Popen(
            [_program("NODE", "node"), script, json.dumps(options)],
            cwd=SERVERS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.log: List[str] = []
        threading.Thread(target=self._collect_stderr, daemon=True).start()
        lines: "queue.Queue[bytes]" = queue.Queue()
        threading.Thread(target=self._read_stdout, args=(lines,), daemon=True).start()
        try:
            line = lines.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"{script}: no ready line; log:\n" + "\n".join(self.log))
        ready = json.loads(line)
        if ready.get("ready") is not True:
            self.stop()
            raise RuntimeError(f"{script}: unexpected ready line {line!r}")
        self.issuer: str = ready["issuer"]
        self.port: int = ready["port"]

    def _collect_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.decode("utf-8", "replace").rstrip())

    def _read_stdout(self, lines: "queue.Queue[bytes]") -> None:
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        lines.put(first)
        for _ in self.process.stdout:  # nothing more is expected; never let the pipe fill
            pass

    def url(self, path: str) -> str:
        return self.issuer + path

    @property
    def token_endpoint(self) -> str:
        return self.url("/token")

    @property
    def resource_url(self) -> str:
        return self.url("/api/resource")

    def _plain(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.url(path), method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> Dict[str, Any]:
        return self._plain("GET", "/test/stats")

    def reset_stats(self) -> None:
        self._plain("POST", "/test/stats/reset")

    def expire_access_tokens(self) -> int:
        """Makes the server forget every access token (oauth2-server.js only)."""
        return self._plain("POST", "/test/expire-access-tokens")["forgotten"]

    def stop(self) -> None:
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def oauth2_server(**options: Any) -> RunningServer:
    return RunningServer("oauth2-server.js", options)


def oidc(**options: Any) -> RunningServer:
    return RunningServer("oidc.js", options)
