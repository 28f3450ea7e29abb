"""blocklist: a cfhost callflow module written in Python.

The node lists numbers and prefixes. A caller whose caller id number is one of the numbers,
or starts with one of the prefixes, is blocked: the call goes to the node's `blocked` child,
or is hung up with `CALL_REJECTED` (Q.850 21) when the node has none. With `block_anonymous`,
a caller without a number (or `anonymous`) is blocked too. Everyone else goes on to `_`.
Numbers are compared as they are written: list both forms if callers arrive as `+1555...`
and `1555...`.
"""

import json

import wit_world
from wit_world.imports import call_control, log, node, types

DATA_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "description": "Callers to turn away, by caller id number",
    "type": "object",
    "properties": {
        "numbers": {
            "description": "Caller id numbers blocked exactly",
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 64},
            "maxItems": 10000,
        },
        "prefixes": {
            "description": "Caller id number prefixes blocked (e.g. +1900)",
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 64},
            "maxItems": 1000,
        },
        "block_anonymous": {
            "description": "Block callers without a caller id number, or `anonymous`",
            "type": "boolean",
            "default": False,
        },
    },
    "additionalProperties": False,
}

#: The cause a blocked call is hung up with when the node has no `blocked` child.
REJECTED = "CALL_REJECTED"


def why_blocked(number, data):
    """Why a caller with `number` (or None) is blocked by the node's `data`, or None."""
    if not number or number.lower() == "anonymous":
        return "anonymous caller" if data.get("block_anonymous", False) else None
    if number in data.get("numbers", []):
        return f"{number} is listed"
    for prefix in data.get("prefixes", []):
        if number.startswith(prefix):
            return f"{number} starts with {prefix}"
    return None


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return types.Description(
            name="blocklist",
            version="0.1.0",
            summary="Turns away listed callers: to the blocked child, else hangs up CALL_REJECTED",
            data_schema=json.dumps(DATA_SCHEMA),
            capabilities=[types.Capability.CALL_CONTROL, types.Capability.LOG],
        )

    def handle(self, call, data):
        # The host has checked `data` against DATA_SCHEMA.
        reason = why_blocked(call.caller_id_number(), json.loads(data))
        if reason is None:
            return types.Outcome_ContinueTo([])
        if "blocked" in node.child_keys():
            log.log(log.Level.INFO, f"blocked ({reason}): to the blocked child")
            return types.Outcome_ContinueTo(["blocked"])
        log.log(log.Level.INFO, f"blocked ({reason}): hung up {REJECTED}")
        call_control.hangup(REJECTED)
        return types.Outcome_Stop()

    def on_termination(self, call, hangup, state):
        pass
