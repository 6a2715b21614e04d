"""redact: secrets out of the output before anyone reads it."""

from __future__ import annotations

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._redact import MASK, RedactError, redact, secret_values


def test_every_occurrence_of_every_value_of_a_dict():
    env = {"SECRET_KEY": "s3cr3t-k3y-value", "DATABASE_URL": "postgres://shop:pa55word@db/shop"}
    text = "SECRET_KEY=s3cr3t-k3y-value\nDATABASE_URL=postgres://shop:pa55word@db/shop\nagain s3cr3t-k3y-value"
    assert redact(text, env) == "SECRET_KEY=%s\nDATABASE_URL=%s\nagain %s" % (MASK, MASK, MASK)


def test_a_list_of_secrets_and_a_list_of_lines():
    lines = ["user hunter2hunter2 logged in", "nothing here", ""]
    assert redact(lines, ["hunter2hunter2"]) == ["user %s logged in" % MASK, "nothing here", ""]
    assert redact(("a hunter2hunter2",), ["hunter2hunter2"]) == ["a %s" % MASK]


def test_longest_first_masks_a_secret_containing_another_whole():
    assert redact("token=abcdef-123456", ["abcdef", "abcdef-123456"]) == "token=" + MASK
    assert secret_values(["abcdef", "abcdef-123456"]) == ["abcdef-123456", "abcdef"]


@pytest.mark.parametrize("value", ["short", "8000", 123456, "123456", "-654321", True, "false", "False", "yes", "no", None, ""])
def test_values_that_would_garble_the_output_are_left_alone(value):
    text = "port 8000 123456 -654321 short yes no false False True"
    assert redact(text, {"X": value}) == text
    assert secret_values([value]) == []


def test_a_float_or_a_long_number_like_string_is_still_a_secret():
    assert redact("pi 3.14159", [3.14159]) == "pi " + MASK
    assert redact("key 12345-678", {"k": "12345-678"}) == "key " + MASK


def test_nested_values_and_no_secrets():
    assert redact("a abcdefgh b ijklmnop", {"x": {"y": "abcdefgh"}, "z": ["ijklmnop"]}) == "a %s b %s" % (MASK, MASK)
    assert redact("nothing to hide", {}) == "nothing to hide"
    assert redact("nothing to hide", None) == "nothing to hide"
    assert redact("one abcdefgh", "abcdefgh") == "one " + MASK


def test_the_input_is_not_changed():
    lines = ["x abcdefgh"]
    redact(lines, ["abcdefgh"])
    assert lines == ["x abcdefgh"]


@pytest.mark.parametrize(
    "data, secrets, message",
    [
        ({"a": "b"}, [], "takes a string or a list of strings, got dict"),
        (["ok", 3], [], "item 1 is int"),
        (None, [], "got NoneType"),
        ("text", 42, "secrets must be a dict"),
        ("text", [object()], "secrets must be strings"),
    ],
)
def test_wrong_shapes_are_refused(data, secrets, message):
    with pytest.raises(RedactError, match=message):
        redact(data, secrets)
