"""``shapes.py``: parsing specs and the matcher's messages (the cases ``tests/test_shapes.py``
does not already hold)."""

from __future__ import annotations

import pytest

from inspectnn.errors import InvalidInputError, SpecError
from inspectnn.shapes import Spec, format_bindings, match_shape, parse_spec


def test_parse_spec_forms() -> None:
    assert parse_spec("B, 3,H") == Spec(("B", 3, "H"), "B, 3,H")
    assert parse_spec((64, "B")) == Spec((64, "B"), "64 B")
    assert parse_spec("B _ 2").dims == ("B", "*", 2)  # _ is any one dimension
    assert parse_spec("  _ ") == Spec((), "_", unchecked=True)
    spec = parse_spec("B ... C")
    assert parse_spec(spec) is spec and str(spec) == "B ... C"


def test_a_name_on_both_sides_of_the_ellipsis_binds_once() -> None:
    bindings: dict[str, int] = {}
    assert match_shape("B ... B", (2, 7, 7, 2), bindings) is None
    assert bindings == {"B": 2}
    assert match_shape("B ... B", (2, 7, 3), {}) == (
        "dimension 2: expected B=2 (bound earlier), got 3"
    )


def test_a_tail_dimension_is_named_by_its_place_in_the_whole_shape() -> None:
    assert match_shape("B ... 10", (4, 5, 6, 11), {}) == "dimension 3: expected 10, got 11"
    assert match_shape("... C 3", (9, 9, 4), {}) == "dimension 2: expected 3, got 4"
    assert match_shape("...", (), {}) is None


def test_bindings_given_in_are_checked_and_kept() -> None:
    bindings = {"B": 2}
    assert match_shape("B C", (3, 4), bindings) == (
        "dimension 0: expected B=2 (bound earlier), got 3"
    )
    assert match_shape("B C", (2, 4), bindings) is None and bindings == {"B": 2, "C": 4}
    assert format_bindings(bindings) == "B=2, C=4" and format_bindings({}) == "none"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("B 2x", "use integers, names like B or seq"),
        ("... B ...", "uses '...' twice"),
        ("B -3", "dimension -3 in spec 'B -3' is negative"),
        ((True, 2), "bad dimension True"),
        (None, "a shape spec is a string like 'B 3 H W'"),
    ],
)
def test_a_bad_spec_is_an_input_error_naming_the_token(bad: object, says: str) -> None:
    with pytest.raises(SpecError, match=says) as info:
        parse_spec(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, InvalidInputError)
