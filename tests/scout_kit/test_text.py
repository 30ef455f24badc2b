"""The one rule for text from outside, and its check over a whole gRPC request."""

from __future__ import annotations

import pytest

from scout.ingest.v1 import ingest_pb2
from scout.keys.v1 import keys_pb2
from scout_kit.grpc_server import message_text_fault
from scout_kit.text import text_fault


@pytest.mark.parametrize(
    ("text", "controls", "fault"),
    [
        ("web-1", False, None),
        ("café ☕", True, None),
        ("a\x00b", False, "U+0000"),
        ("é\x00", False, "U+0000"),
        ("tab\there", False, None),
        ("tab\there", True, "a control character"),
        ("del\x7f", True, "a control character"),
        ("\udcff", False, "a lone surrogate or bytes that are not UTF-8"),
    ],
)
def test_text_fault(text: str, controls: bool, fault: str | None) -> None:
    assert text_fault(text, controls=controls) == fault


def test_message_text_fault_names_the_field_however_nested() -> None:
    assert message_text_fault(keys_pb2.CreateServerRequest(name="web-1")) is None
    assert message_text_fault(keys_pb2.CreateServerRequest(name="web\x00")) == ("name holds U+0000")
    batch = ingest_pb2.WriteBatchRequest(
        entries=[ingest_pb2.SampleColumns(names=["cpu"]), ingest_pb2.SampleColumns(names=["a\x00"])]
    )
    assert message_text_fault(batch) == "entries[].names holds U+0000"
    # Many flat entries are checked joined; a fault in any of them is still named.
    fine = [ingest_pb2.SampleColumns(server_id="s", names=["cpu", "mem"]) for _ in range(50)]
    assert message_text_fault(ingest_pb2.WriteBatchRequest(entries=fine)) is None
    late = [*fine, ingest_pb2.SampleColumns(server_id="s\x00", names=["cpu"])]
    assert message_text_fault(ingest_pb2.WriteBatchRequest(entries=late)) == (
        "entries[].server_id holds U+0000"
    )
    usage = keys_pb2.RecordKeyUsageRequest(
        usages=[keys_pb2.KeyUsage(key_id="k", last_used_address="1.2.3.4\x00")]
    )
    assert message_text_fault(usage) == "usages[].last_used_address holds U+0000"
