"""Who may use the console: logins for any address but loopback, operator and viewer roles, and
an audit log of who did what.

- Bound to loopback (the default) the console needs no login: everyone is the local operator.
- Bound to any other address it refuses to start without a users file (`--users FILE`); there
  is no default user, password or token. Make the file with

      python -m ui.access add-user FILE NAME [--role operator|viewer] [--token]

  which asks for the password (stored as a salted scrypt hash) and, with --token, prints a new
  API token (stored as its SHA-256) for scripts: `Authorization: Bearer <token>`.
- Browsers log in at /login and get a session cookie signed with a key made at start (a restart
  logs everyone out). A wrong password or token is refused after a delay that doubles with each
  failure from the same address (`FAILURE_DELAY_S` up to `MAX_FAILURE_DELAY_S`), and logged.
- Operators drive, record and load models; viewers watch. The plain routes refuse a viewer's
  POST (the e-stop excepted: anyone who sees the robot may stop it); the page's own controls
  ask `may_operate` before submitting. One operator at a time holds control of the robot: the
  session's control lease (runtime/control/session.py), keyed by the operator's name.
- Audit: one JSON line per login, failure and command (time, user, address, action, detail).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

ROLES = ("operator", "viewer")
LOCAL_USER_NAME = "local"
COOKIE = "foresight_session"
SESSION_HOURS = 12
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # a noticeable fraction of a second per check: cheap for a login, costly for guessing
FAILURE_DELAY_S = 0.5
MAX_FAILURE_DELAY_S = 30.0
OPEN_PATHS = ("/login",)  # reachable before logging in
ANYONE_MAY_POST = ("/api/estop",)  # stopping the robot needs no operator role


class AccessError(ValueError):
    """The access configuration cannot be used; the message says what to do."""


@dataclass(frozen=True)
class User:
    name: str
    role: str  # one of ROLES

    @property
    def may_operate(self) -> bool:
        return self.role == "operator"


LOCAL_USER = User(LOCAL_USER_NAME, "operator")


def _hash_password(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode(), salt=salt, **SCRYPT).hex()


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(path: Path, name: str, password: str, role: str, with_token: bool) -> str | None:
    """Add (or replace) `name` in the users file; returns the new API token when asked for one."""
    if role not in ROLES:
        raise AccessError(f"role must be one of {ROLES}, got {role!r}")
    if not name or not name.isprintable() or "|" in name:
        raise AccessError(f"user names must be printable and without '|', got {name!r}")
    if len(password) < 8:
        raise AccessError("passwords must have at least 8 characters")
    users = json.loads(path.read_text())["users"] if path.is_file() else []
    salt = secrets.token_bytes(16)
    token = secrets.token_urlsafe(32) if with_token else None
    entry = {"name": name, "role": role, "salt": salt.hex(), "scrypt": _hash_password(password, salt),
             "token_sha256": _hash_token(token) if token else None}
    users = [u for u in users if u["name"] != name] + [entry]
    path.write_text(json.dumps({"users": users}, indent=2))
    path.chmod(0o600)
    return token


class Access:
    def __init__(self, users_file: Path | None, audit_log: Path | None = None, required: bool = False) -> None:
        """required: the console is reachable from other machines, so a login is needed."""
        self.required = required
        self._users: dict[str, dict] = {}
        if users_file is not None:
            try:
                rows = json.loads(Path(users_file).read_text())["users"]
                self._users = {row["name"]: row for row in rows}
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise AccessError(f"cannot read the users file {users_file}: {err}") from err
        if required and not self._users:
            raise AccessError(
                "binding an address other than loopback needs logins: make a users file with "
                "`python -m ui.access add-user FILE NAME` and pass --users FILE")
        self._key = secrets.token_bytes(32)  # signs session cookies; a restart logs everyone out
        self._audit_path = audit_log
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}  # address -> consecutive failures

    # --- who is this? -----------------------------------------------------------------------
    def user_of(self, request: Request) -> User | None:
        if not self.required:
            return LOCAL_USER
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self.check_token(header[len("bearer "):].strip())
        return self._read_cookie(request.cookies.get(COOKIE, ""))

    def check_password(self, name: str, password: str) -> User | None:
        row = self._users.get(name)
        if row is None:
            _hash_password(password, b"0" * 16)  # the same time either way: names cannot be probed
            return None
        if not hmac.compare_digest(_hash_password(password, bytes.fromhex(row["salt"])), row["scrypt"]):
            return None
        return User(name, row["role"])

    def check_token(self, token: str) -> User | None:
        digest = _hash_token(token)
        for name, row in self._users.items():
            if row.get("token_sha256") and hmac.compare_digest(row["token_sha256"], digest):
                return User(name, row["role"])
        return None

    def cookie_for(self, user: User) -> str:
        expires = int(time.time()) + SESSION_HOURS * 3600
        body = f"{user.name}|{expires}"
        return f"{body}|{self._sign(body)}"

    def _read_cookie(self, value: str) -> User | None:
        try:
            name, expires, signature = value.rsplit("|", 2)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign(f"{name}|{expires}")) or int(expires) < time.time():
            return None
        row = self._users.get(name)
        return User(name, row["role"]) if row else None

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    # --- failures and the audit log ---------------------------------------------------------
    def failure_delay(self, address: str) -> float:
        """Count a failure from `address`; how long to wait before answering it."""
        with self._lock:
            count = self._failures[address] = self._failures.get(address, 0) + 1
        return min(MAX_FAILURE_DELAY_S, FAILURE_DELAY_S * 2 ** (count - 1))

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def audit(self, user: str, address: str, action: str, detail: Any = "") -> None:
        if self._audit_path is None:
            return
        line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "user": user, "address": address,
                           "action": action, "detail": detail}, default=str)
        with self._lock, open(self._audit_path, "a") as log:
            log.write(line + "\n")

    # --- the page's own controls (Gradio handlers) --------------------------------------------
    def may_operate(self, username: str | None) -> bool:
        if not self.required:
            return True
        row = self._users.get(username or "")
        return bool(row) and row["role"] == "operator"

    def gradio_user(self, request: Request) -> str | None:
        """The user's name, None when not logged in."""
        user = self.user_of(request)
        return None if user is None else user.name

    @property
    def auth_dependency(self) -> Callable[[Request], str | None] | None:
        """For gr.mount_gradio_app(auth_dependency=...): none for an open console."""
        return self.gradio_user if self.required else None


def install_access(app: FastAPI, access: Access) -> None:
    """The login page, and a check on every request: who it is, and whether they may do it."""

    @app.middleware("http")
    async def check(request: Request, call_next: Callable) -> Response:
        path = request.url.path
        address = request.client.host if request.client else "?"
        if not access.required or path in OPEN_PATHS:
            return await call_next(request)
        user = access.user_of(request)
        if user is None:
            if request.headers.get("authorization"):
                await asyncio.sleep(access.failure_delay(address))
                access.audit("?", address, "token refused", path)
                return JSONResponse({"detail": "invalid token"}, status_code=401)
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse("/login", status_code=303)
            return JSONResponse({"detail": "log in first (/login)"}, status_code=401)
        if request.method == "POST" and path.startswith("/api/"):
            if not user.may_operate and path not in ANYONE_MAY_POST:
                access.audit(user.name, address, "refused (viewer)", path)
                return JSONResponse({"detail": f"{user.name} is a viewer: viewers watch only"}, status_code=403)
            access.audit(user.name, address, "api", path)
        return await call_next(request)

    @app.get("/login")
    def login_page(failed: int = 0) -> HTMLResponse:
        note = "<p style='color:#dc2626'>Wrong name or password.</p>" if failed else ""
        return HTMLResponse(
            "<!doctype html><title>Foresight Console: log in</title>"
            "<body style='font-family:sans-serif;max-width:320px;margin:80px auto'>"
            f"<h2>Foresight Console</h2>{note}<form method='post' action='/login'>"
            "<p><label>Name<br><input name='name' id='login-name' autofocus></label></p>"
            "<p><label>Password<br><input name='password' id='login-password' type='password'></label></p>"
            "<p><button id='login-submit'>Log in</button></p></form></body>"
        )

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        address = request.client.host if request.client else "?"
        user = await asyncio.to_thread(access.check_password, name, password)
        if user is None:
            await asyncio.sleep(access.failure_delay(address))
            access.audit(name, address, "login refused")
            return RedirectResponse("/login?failed=1", status_code=303)
        access.succeeded(address)
        access.audit(user.name, address, "login", user.role)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, access.cookie_for(user), httponly=True, samesite="strict",
                            max_age=SESSION_HOURS * 3600)
        return response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Manage the console's users file.")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-user", help="add or replace a user")
    add.add_argument("file", type=Path)
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="operator")
    add.add_argument("--token", action="store_true", help="also make an API token (printed once)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    args = parser.parse_args(argv)
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"password for {args.name}: ")
    try:
        token = add_user(args.file, args.name, password, args.role, args.token)
    except AccessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.name} ({args.role}) saved in {args.file}")
    if token:
        print(f"API token (shown once): {token}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
