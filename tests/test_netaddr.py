"""forwarder.netaddr: ip:port splitting shared by the Crusoe source and the ECS mapping."""

from __future__ import annotations

import pytest

from forwarder.netaddr import split_address


@pytest.mark.parametrize(
    "value, expected",
    [
        ("10.1.2.3:36338", ("10.1.2.3", 36338)),
        ("10.192.200.155:12345", ("10.192.200.155", 12345)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("[2001:db8::1]", ("2001:db8::1", None)),
        ("[2001:db8::1]:", ("2001:db8::1", None)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("2001:DB8:0::1", ("2001:db8::1", None)),
        ("[::ffff:0a01:0203]:8080", ("::ffff:a01:203", 8080)),
        ("010.1.2.3", (None, None)),
        (["10.1.2.3"], (None, None)),
        ("10.1.2.3", ("10.1.2.3", None)),
        (" 10.1.2.3:0 ", ("10.1.2.3", 0)),
        ("", (None, None)),
        ("  ", (None, None)),
        (None, (None, None)),
        (42, (None, None)),
        ("not-an-ip:80", (None, None)),
        ("104.36.311.11", (None, None)),
        ("10.1.2.3:99999", (None, None)),
        ("10.1.2.3:http", (None, None)),
        ("[2001:db8::1]x", (None, None)),
        ("[2001:db8::1]:99999", (None, None)),
        ("[2001:db8::1", (None, None)),
    ],
)
def test_split_address(value, expected):
    assert split_address(value) == expected

