"""blocklist's branches, run natively against a scripted call: `pytest`."""

import json

import pytest
from cfhost_testing import ScriptedCall
from wit_world.imports import types

import blocklist

MODULE = blocklist.WitWorld()
DATA = {"numbers": ["+15550001234"], "prefixes": ["+1900", "+44"]}


def test_it_describes_itself_asking_for_call_control_and_logging():
    description = MODULE.describe()
    assert description.name == "blocklist"
    assert description.capabilities == [types.Capability.CALL_CONTROL, types.Capability.LOG]
    assert json.loads(description.data_schema)["additionalProperties"] is False


def test_a_listed_number_goes_to_the_blocked_child():
    call = ScriptedCall(caller_id_number="+15550001234").children(["blocked", "_"])
    assert call.handle(MODULE, DATA) == types.Outcome_ContinueTo(["blocked"])
    assert call.hangups == []
    assert call.logs == [("info", "blocked (+15550001234 is listed): to the blocked child")]


@pytest.mark.parametrize("number", ["+19005550000", "+442071234567"])
def test_a_number_with_a_listed_prefix_is_hung_up_rejected_without_a_blocked_child(number):
    call = ScriptedCall(caller_id_number=number).children(["_"])
    assert call.handle(MODULE, DATA) == types.Outcome_Stop()
    assert call.hangups == ["CALL_REJECTED"]


def test_anyone_else_goes_on_to_the_default_child():
    call = ScriptedCall(caller_id_number="+15550009999").children(["blocked", "_"])
    assert call.handle(MODULE, DATA) == types.Outcome_ContinueTo([])
    assert call.hangups == [] and call.logs == []


def test_anonymous_callers_are_blocked_only_when_the_node_says_so():
    for number in [None, "anonymous", ""]:
        call = ScriptedCall(caller_id_number=number)
        assert call.handle(MODULE, DATA) == types.Outcome_ContinueTo([])
        call = ScriptedCall(caller_id_number=number)
        assert call.handle(MODULE, {"block_anonymous": True}) == types.Outcome_Stop()
        assert call.hangups == ["CALL_REJECTED"]


def test_a_prefix_of_a_listed_number_is_not_blocked():
    call = ScriptedCall(caller_id_number="+1555000123")
    assert call.handle(MODULE, DATA) == types.Outcome_ContinueTo([])

