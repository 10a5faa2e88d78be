"""Report parsing and DSN classification, without a database."""

import string

import pytest

from posthouse.delivery.classify import classify_dsn
from posthouse.inbound.reports import ReportKind, parse_report
from tests.inbound.conftest import SAMPLES

VALUES = {
    "verp": "bounces@bounces.shop.example",
    "return_path": "bounces@bounces.shop.example",
    "return_path_domain": "bounces.shop.example",
    "recipient": "bob@mailhost.example",
    "message_id": "<01JC9ZZZ@shop.example>",
    "sender": "orders@shop.example",
}


def sample(name: str) -> bytes:
    return string.Template((SAMPLES / f"{name}.eml").read_text()).substitute(VALUES).encode()


class TestClassifyDsn:
    """A DSN's recipient line through the one classifier (delivery/classify.py)."""

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            ("5.1.1", ("Permanent", "NoEmail")),
            ("5.1.10", ("Permanent", "NoEmail")),
            ("5.0.0", ("Undetermined", "General")),
            ("5.2.2", ("Transient", "MailboxFull")),
            ("5.3.4", ("Transient", "MessageTooLarge")),
            ("5.7.1", ("Transient", "Blocked")),
            ("4.4.1", ("Transient", "General")),
            (None, ("Undetermined", "General")),
        ],
    )
    def test_the_enhanced_status_code_decides(
        self, status: str | None, expected: tuple[str, str]
    ) -> None:
        verdict = classify_dsn(status, None)
        assert (verdict.bounce_type, verdict.bounce_subtype) == expected

    def test_a_status_in_the_diagnostic_is_used_when_the_field_is_missing(self) -> None:
        verdict = classify_dsn(None, "550 5.1.1 user unknown")
        assert (verdict.bounce_type, verdict.bounce_subtype) == ("Permanent", "NoEmail")


class TestParseReport:
    @pytest.mark.parametrize(
        ("name", "kind", "format"),
        [
            ("postfix_dsn", ReportKind.BOUNCE, "dsn"),
            ("exchange_dsn", ReportKind.BOUNCE, "dsn"),
            ("delayed_dsn", ReportKind.DELAY, "dsn"),
            ("arf_abuse", ReportKind.COMPLAINT, "arf"),
            ("arf_redacted", ReportKind.COMPLAINT, "arf"),
            ("qmail", ReportKind.BOUNCE, "text"),
            ("exim", ReportKind.BOUNCE, "text"),
            ("exchange_text", ReportKind.BOUNCE, "text"),
            ("gmail_text", ReportKind.BOUNCE, "text"),
            ("vacation", ReportKind.OTHER, "text"),
        ],
    )
    def test_each_style_is_recognised_with_the_original_message_id(
        self, name: str, kind: ReportKind, format: str
    ) -> None:
        report = parse_report(sample(name))

        assert (report.kind, report.format) == (kind, format)
        assert report.original_message_id == "<01JC9ZZZ@shop.example>"

    @pytest.mark.parametrize(
        "name", ["postfix_dsn", "qmail", "exim", "exchange_text", "gmail_text"]
    )
    def test_the_failed_recipient_and_its_reply_are_found(self, name: str) -> None:
        [line] = parse_report(sample(name)).failed()

        assert line.recipient == "bob@mailhost.example"
        assert line.status == "5.1.1"
        assert line.diagnostic is not None
        assert "5.1.1" in line.diagnostic

    def test_arf_fields_are_read(self) -> None:
        feedback = parse_report(sample("arf_abuse")).feedback

        assert feedback is not None
        assert feedback.feedback_type == "abuse"
        assert feedback.original_rcpt_to == ["bob@mailhost.example"]
        assert feedback.source_ip == "192.0.2.10"

    def test_garbage_is_no_report(self) -> None:
        assert parse_report(b"\x00\xff not a message").kind == ReportKind.OTHER
