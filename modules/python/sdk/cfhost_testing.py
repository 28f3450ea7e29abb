"""Testing a cfhost module without the host: a scripted call, like the Rust SDK's
`cfhost_sdk::testing`.

The module's imports (`wit_world.imports.log`, `.node`, `.call_control`, ...) reach the call
that is running it, which records what the module did. Call them through their module
(`log.log(...)`, not `from wit_world.imports.log import log`), so that the test can stand in
for the host::

    from cfhost_testing import ScriptedCall
    import my_module

    call = ScriptedCall(caller_id_number="+15550001234").children(["blocked", "_"])
    outcome = call.handle(my_module.WitWorld(), {"numbers": ["+15550001234"]})
    assert call.logs == [...]

`use_bindings(wit_dir)` (from a `conftest.py`) makes `wit_world` importable natively: it runs
`componentize-py bindings` once per WIT text into `.cfhost-bindings/` next to the WIT.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

#: The longest caller id part the host takes, in bytes.
MAX_CALLER_ID_BYTES = 128

#: The host functions a module can call, by interface module and function name.
HOST_FUNCTIONS = {
    "node": ["child_keys"],
    "account": ["settings"],
    "call_control": ["answer", "bridge", "record_voicemail", "hangup"],
    "directory": ["lookup_users"],
    "notify": ["publish"],
    "callbacks": ["register_termination"],
    "log": ["log"],
}


def use_bindings(wit_dir: Path, world: str = "callflow-module") -> None:
    """Generates the `wit_world` bindings of `wit_dir` (if its WIT changed) and puts them on
    `sys.path`."""
    wit_dir = Path(wit_dir).resolve()
    digest = hashlib.sha256()
    for file in sorted(wit_dir.glob("*.wit")):
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    out = wit_dir.parent / ".cfhost-bindings" / digest.hexdigest()[:16]
    if not (out / "wit_world").is_dir():
        tool = Path(sys.executable).with_name("componentize-py")
        command = str(tool) if tool.exists() else shutil.which("componentize-py")
        if command is None:
            raise RuntimeError("componentize-py is not installed: pip install -r requirements.txt")
        subprocess.run(
            [command, "-d", str(wit_dir), "-w", world, "bindings", str(out)], check=True
        )
    sys.path.insert(0, str(out))


class ModuleError(Exception):
    """What the module raised from `handle` or `on_termination` as `Err(...)`: the node's
    error."""


class ScriptedCall:
    """A call for a module to run in: its facts, and what the module did to it.

    Keyword arguments set the call's facts, named as the call's methods are; the defaults are
    an inbound call from +15550009999 to +15550001000 in account `account-1`.
    """

    def __init__(self, **info: Any) -> None:
        self.info = {
            "id": "call-1",
            "account_id": "account-1",
            "request": "+15550001000",
            "caller_id_name": None,
            "caller_id_number": "+15550009999",
            "callee_id_name": None,
            "callee_id_number": None,
            "from_user": None,
            "from_realm": None,
            "to_user": None,
            "to_realm": None,
            "authorizing_type": None,
            "authorizing_id": None,
            "sip_headers": [],
        }
        unknown = set(info) - set(self.info)
        if unknown:
            raise TypeError(f"no such fact of a call: {sorted(unknown)}")
        self.info.update(info)
        self.bridged = False
        self.message_left = False
        self.child_keys = ["_"]
        self.users: list = []
        self.bridge_results: list = []
        self.answered = False
        self.bridges: list = []
        self.hangups: list = []
        self.notifications: list = []
        self.callbacks: list = []
        self.logs: list = []

    def children(self, keys: list[str]) -> "ScriptedCall":
        """The keys of the node's children (by default `_` alone)."""
        self.child_keys = list(keys)
        return self

    def user(self, user: Any) -> "ScriptedCall":
        """Adds a user (a `directory.User`) to the account's directory."""
        self.users.append(user)
        return self

    def bridge_result(self, result: Any) -> "ScriptedCall":
        """What the next bridge returns (in order; answered once they run out)."""
        self.bridge_results.append(result)
        return self

    @property
    def caller_id(self) -> tuple[Optional[str], Optional[str]]:
        """The caller id (name, number) as it is now (after a module set it)."""
        return self.info["caller_id_name"], self.info["caller_id_number"]

    def handle(self, module: Any, data: Any = None) -> Any:
        """Runs `module.handle` for this call with node data `data` (a dict): its outcome."""
        text = json.dumps({} if data is None else data)
        return self._run(lambda: module.handle(_Call(self), text))

    def terminate(self, module: Any, hangup: Any, state: bytes) -> None:
        """Runs `module.on_termination` for this call with `hangup` and the registered state."""
        return self._run(lambda: module.on_termination(_Call(self), hangup, state))

    def _run(self, body):
        from componentize_py_types import Err

        saved = []
        try:
            for name, functions in HOST_FUNCTIONS.items():
                interface = __import__(f"wit_world.imports.{name}", fromlist=["_"])
                for function in functions:
                    saved.append((interface, function, getattr(interface, function)))
                    setattr(interface, function, getattr(self, f"_{function}"))
            return body()
        except Err as error:
            raise ModuleError(str(error.value)) from None
        finally:
            for interface, function, original in saved:
                setattr(interface, function, original)

    # The host's side of each import.

    def _child_keys(self):
        return list(self.child_keys)

    def _settings(self):
        from wit_world.imports import account

        return account.AccountSettings(self.info["account_id"], None, None, None)

    def _answer(self):
        self.answered = True

    def _bridge(self, request):
        from wit_world.imports import call_control

        self.bridges.append(request)
        result = self.bridge_results.pop(0) if self.bridge_results else call_control.BridgeResult_Answered()
        if isinstance(result, call_control.BridgeResult_Answered):
            self.bridged = True
        return result

    def _record_voicemail(self, box_id, max_secs):
        from wit_world.imports import call_control

        return call_control.RecordResult_CallerHungUp()

    def _hangup(self, cause):
        self.hangups.append(cause)

    def _lookup_users(self, ids):
        return [next((u for u in self.users if u.id == i), None) for i in ids]

    def _publish(self, notification):
        self.notifications.append(notification)

    def _register_termination(self, state):
        if bytes(state) not in self.callbacks:
            self.callbacks.append(bytes(state))

    def _log(self, level, message):
        self.logs.append((level.name.lower(), message))


class _Call:
    """The call resource a module is lent: its methods read the scripted call."""

    def __init__(self, scripted: ScriptedCall) -> None:
        self._s = scripted

    def __getattr__(self, fact):
        info = self._s.info
        if fact in info and fact != "sip_headers":
            return lambda: info[fact]
        raise AttributeError(fact)

    def authorized_by(self):
        from wit_world.imports import call

        kind, id_ = self._s.info["authorizing_type"], self._s.info["authorizing_id"]
        if kind is None:
            return None
        if kind == "resource" and id_ is not None:
            return call.AuthorizedBy_Trunk(id_)
        if kind == "device" and id_ is not None:
            return call.AuthorizedBy_Device(id_)
        return call.AuthorizedBy_Other((kind, id_))

    def sip_header(self, name):
        return next(
            (v for n, v in self._s.info["sip_headers"] if n.lower() == name.lower()), None
        )

    def sip_headers(self):
        return [(n, v) for n, v in self._s.info["sip_headers"]]

    def current_flags(self):
        from wit_world.imports import types

        return types.CallFlags(self._s.bridged, self._s.message_left)

    def set_message_left(self):
        self._s.message_left = True

    def set_caller_id(self, name, number):
        from componentize_py_types import Err
        from wit_world.imports import call

        for part in (name, number):
            if part is not None and (
                len(part.encode()) > MAX_CALLER_ID_BYTES
                or any(ord(c) < 32 or ord(c) == 127 for c in part)
            ):
                raise Err(
                    call.ControlError_Invalid(
                        f"a caller id part must be at most {MAX_CALLER_ID_BYTES} bytes "
                        "without control characters"
                    )
                )
        if name is not None:
            self._s.info["caller_id_name"] = name
        if number is not None:
            self._s.info["caller_id_number"] = number
