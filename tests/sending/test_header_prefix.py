"""SendLimits.custom_header_prefix: a door whose document allows only some custom header
names (seed 002: "X-") refuses the others in the shared validation."""

import pytest

from posthouse.errors import ValidationFailed
from posthouse.sending.validation import SendLimits, validate_headers

X_ONLY = SendLimits(custom_header_prefix="X-")


class TestCustomHeaderPrefix:
    def test_names_with_the_prefix_pass_whatever_their_case(self) -> None:
        assert validate_headers({"X-Campaign": "a", "x-tag": "b"}, X_ONLY) == {
            "X-Campaign": "a",
            "x-tag": "b",
        }

    def test_a_name_without_it_is_refused_naming_the_header(self) -> None:
        with pytest.raises(ValidationFailed) as refused:
            validate_headers({"X-A": "a", "Precedence": "bulk"}, X_ONLY)

        assert refused.value.field == "headers"
        assert refused.value.detail == "header Precedence must start with X-"

    def test_without_a_prefix_any_safe_name_passes(self) -> None:
        assert validate_headers({"Precedence": "bulk"}) == {"Precedence": "bulk"}
