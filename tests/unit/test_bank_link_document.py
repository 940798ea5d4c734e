"""docs/bank-link.md's worked example is what the adapter computes and sends."""

from __future__ import annotations

import re
from pathlib import Path

from campuscard.adapters.bank import iso

DOC = (Path(__file__).resolve().parents[2] / "docs" / "bank-link.md").read_text()


def example(label: str) -> str:
    match = re.search(rf"^{label}\s+(\S+)", DOC, re.M)
    assert match, label
    return match.group(1)


def test_the_worked_example_computes_as_printed() -> None:
    elements = example("data elements")
    doc = dict(part.split("=", 1) for part in elements.split("|"))
    assert list(doc) == ["t", "3", "4", "7", "11", "37", "41", "42", "49", "102"]
    key = "example-bank-mac-key"
    assert f"`{key}`" in DOC
    assert iso.mac_of(doc, key) == example(r"MAC \(field 128\)")
    framed = iso.pack(doc, key)
    assert framed[:2].hex() == example("length prefix")
    assert framed[2:].decode() == example("message")
    # and the bank reads it back, MAC verified, field 128 carrying the MAC
    assert iso.unpack(framed[2:], key) == doc


def test_every_response_code_the_adapter_knows_is_documented() -> None:
    for code in (iso.APPROVED, iso.NOT_FOUND, iso.REVERSED, iso.CLOSED):
        assert f"| `{code}` |" in DOC
