"""Seed 004's size rules in validate_send: 5 attachments of 5 MB, safe unique names, the
39 MB assembled message, executables refused whatever their name."""

import pytest

from posthouse.errors import (
    AttachmentRejected,
    AttachmentTooLarge,
    AttachmentTypeForbidden,
    RequestTooLarge,
)
from posthouse.sending.schemas import AttachmentInput, SendRequest
from posthouse.sending.validation import SendLimits, validate_send

MB = 1024 * 1024


def _request(*files: AttachmentInput, html: str = "<p>hi</p>") -> SendRequest:
    return SendRequest(
        sender="a@shop.example",
        to=["b@example.com"],
        subject="Files",
        html=html,
        attachments=list(files),
    )


def _pe() -> bytes:
    header = bytearray(b"MZ" + b"\x00" * 126)
    header[0x3C:0x40] = (64).to_bytes(4, "little")
    header[64:68] = b"PE\x00\x00"
    return bytes(header)


class TestSizeRules:
    def test_five_attachments_of_exactly_5_mb_pass(self) -> None:
        files = [AttachmentInput(f"f{i}.bin", b"x" * (5 * MB)) for i in range(5)]

        send = validate_send(_request(*files))

        assert [a.filename for a in send.attachments] == [f"f{i}.bin" for i in range(5)]

    def test_one_byte_over_5_mb_is_too_large(self) -> None:
        with pytest.raises(AttachmentTooLarge) as raised:
            validate_send(_request(AttachmentInput("big.pdf", b"x" * (5 * MB + 1))))

        assert raised.value.status_code == 413

    def test_a_sixth_attachment_is_refused(self) -> None:
        files = [AttachmentInput(f"f{i}.txt", b"x") for i in range(6)]

        with pytest.raises(AttachmentRejected) as raised:
            validate_send(_request(*files))

        assert raised.value.status_code == 422

    def test_duplicate_names_differing_only_in_case_are_refused(self) -> None:
        with pytest.raises(AttachmentRejected, match="duplicate"):
            validate_send(
                _request(AttachmentInput("Invoice.pdf", b"1"), AttachmentInput("invoice.PDF", b"2"))
            )

    def test_the_assembled_message_over_the_limit_is_too_large(self) -> None:
        limits = SendLimits(max_message_bytes=1 * MB)
        files = [AttachmentInput(f"f{i}.bin", b"x" * (300 * 1024)) for i in range(3)]

        with pytest.raises(RequestTooLarge) as raised:
            validate_send(_request(*files), limits)

        assert raised.value.status_code == 413

    @pytest.mark.parametrize(
        ("name", "data"),
        [
            ("invoice.pdf", _pe()),
            ("report.txt", b"\x7fELF\x02\x01\x01" + b"\x00" * 32),
            ("photo.jpg", b"\xcf\xfa\xed\xfe" + b"\x00" * 32),
        ],
    )
    def test_executables_are_refused_whatever_their_name(self, name: str, data: bytes) -> None:
        with pytest.raises(AttachmentTypeForbidden) as raised:
            validate_send(_request(AttachmentInput(name, data)))

        assert raised.value.status_code == 422

    def test_text_that_happens_to_start_with_mz_is_not_an_executable(self) -> None:
        send = validate_send(_request(AttachmentInput("names.csv", b"MZ,Mozambique\n" * 10)))

        assert send.attachments[0].filename == "names.csv"
