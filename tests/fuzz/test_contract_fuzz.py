"""Property 1 (no broker): whatever arrives, the contracts' readers either return the event or
raise ContractViolation with a known reason and a detail; never another exception. That is what
lets the reliable consumer dead-letter a record instead of rewinding onto it forever."""

from __future__ import annotations

import pytest
from fuzz.strategies import ROUTES, any_record_values, valid_events
from hypothesis import given, settings
from hypothesis import strategies as st

from lampo.contracts.catalog import EVENT_TYPES, parse, parser_for
from lampo.contracts.envelope import CloudEvent
from lampo.contracts.errors import REASONS, ContractViolation

# The fixed profile per test, not loaded globally: other suites' hypothesis tests keep theirs.
FUZZ = settings.get_profile("lampo-fuzz")


def read(topic: str, raw: bytes) -> str:
    """``parse`` as the consumers call it, the internal topics' ``parser_for`` and the bare
    envelope reader (retention's observing parser); returns "ok" or the violation's reason."""
    outcomes = []
    for reader in (parse, parser_for(EVENT_TYPES[topic]), lambda _t, r: CloudEvent.from_bytes(r)):
        try:
            reader(topic, raw)
        except ContractViolation as e:
            assert e.reason in REASONS, e.reason
            assert e.detail
            outcomes.append(e.reason)
        else:
            outcomes.append("ok")
    return outcomes[0]


@pytest.mark.parametrize(("topic", "event_type"), ROUTES)
@settings(FUZZ, max_examples=15)
@given(data=st.data())
def test_valid_events_of_every_type_are_accepted(topic: str, event_type: str, data: st.DataObject) -> None:
    raw = data.draw(valid_events(topic, event_type))
    event = parse(topic, raw)
    assert event.envelope.type == event_type


@pytest.mark.parametrize(("topic", "event_type"), ROUTES)
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_any_value_gives_an_event_or_a_contract_violation(topic: str, event_type: str, data: st.DataObject) -> None:
    read(topic, data.draw(any_record_values(event_type)))


@pytest.mark.parametrize("digits", [4301, 20_000])
def test_a_number_with_too_many_digits_is_named_as_such(digits: int) -> None:
    """Found by the fuzzer: Python refuses to read integers past 4,300 digits with a ValueError,
    which was reported as "NaN and Infinity are not JSON"."""
    raw = b'{"specversion": "1.0", "n": ' + b"9" * digits + b"}"
    with pytest.raises(ContractViolation) as caught:
        parse("registry.inbound.v1", raw)
    assert (caught.value.reason, caught.value.detail) == ("invalid_json", "a number has too many digits")


def test_nan_is_still_named_as_such() -> None:
    with pytest.raises(ContractViolation) as caught:
        parse("registry.inbound.v1", b'{"n": NaN}')
    assert caught.value.detail == "NaN and Infinity are not JSON"
