import pytest

from edgebench.core.errors import InvalidNameError
from edgebench.core.names import ModelRef, parse_ref, validate_name


@pytest.mark.parametrize("name", ["digits-rf", "a", "mnv2.int8", "x_1", "0abc"])
def test_valid_names_pass(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "model name is empty"),
        ("team/model", "contains a path separator"),
        ("..", "contains '..'"),
        ("a..b", "contains '..'"),
        ("bad\x00name", "control characters"),
        ("tab\tname", "control characters"),
        ("x" * 65, "65 characters long; the limit is 64"),
        ("Digits", "use lowercase letters"),
        ("-lead", "starting with a letter or digit"),
        (42, "must be a string, got int"),
    ],
)
def test_bad_names_say_what_is_wrong(name, message):
    with pytest.raises(InvalidNameError, match=None) as err:
        validate_name(name)
    assert message in str(err.value)


def test_reference_with_version():
    assert parse_ref("digits-rf:3") == ModelRef("digits-rf", 3)
    assert str(parse_ref("digits-rf:3")) == "digits-rf:3"
    assert parse_ref("digits-rf") == ModelRef("digits-rf", None)


@pytest.mark.parametrize("ref", ["digits-rf:", "digits-rf:0", "digits-rf:x", "digits-rf:-1"])
def test_reference_with_bad_version(ref):
    with pytest.raises(InvalidNameError, match="a version is a whole number from 1"):
        parse_ref(ref)
