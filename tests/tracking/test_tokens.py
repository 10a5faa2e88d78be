"""Signed tracking tokens: genuine ones verify, anything else is None; keys rotate."""

import uuid

import pytest

from posthouse.tracking.tokens import TokenKind, TokenSigner

DELIVERY = uuid.UUID("01932f6e-8f1a-7c3b-9d2e-4a5b6c7d8e9f")


class TestTokens:
    def test_a_genuine_token_gives_back_its_claims(self) -> None:
        signer = TokenSigner(("current",))

        token = signer.sign(TokenKind.CLICK, DELIVERY, 7)
        claims = signer.verify(token, TokenKind.CLICK)

        assert claims is not None
        assert (claims.delivery_id, claims.position) == (DELIVERY, 7)
        assert token == token.lower()
        assert len(token) == 50

    def test_case_folded_by_a_relay_still_verifies(self) -> None:
        signer = TokenSigner(("current",))

        token = signer.sign(TokenKind.UNSUBSCRIBE, DELIVERY)

        assert signer.verify(token.upper(), TokenKind.UNSUBSCRIBE) is not None

    @pytest.mark.parametrize("position", [0, 3])
    def test_every_changed_character_is_refused(self, position: int) -> None:
        signer = TokenSigner(("current",))
        token = signer.sign(TokenKind.CLICK, DELIVERY, position)

        for index in range(len(token)):
            for swapped in "abcdefghijklmnopqrstuvwxyz234567":
                if swapped != token[index]:
                    tampered = token[:index] + swapped + token[index + 1 :]
                    assert signer.verify(tampered, TokenKind.CLICK) is None, (index, swapped)

    def test_another_kind_or_another_key_is_refused(self) -> None:
        signer = TokenSigner(("current",))
        token = signer.sign(TokenKind.OPEN, DELIVERY)

        assert signer.verify(token, TokenKind.CLICK) is None
        assert signer.verify(token, TokenKind.UNSUBSCRIBE) is None
        assert TokenSigner(("someone else",)).verify(token, TokenKind.OPEN) is None

    @pytest.mark.parametrize("garbage", ["", "x", "!" * 50, "a" * 64, "a" * 65, "é" * 50])
    def test_garbage_is_refused(self, garbage: str) -> None:
        assert TokenSigner(("current",)).verify(garbage, TokenKind.OPEN) is None

    def test_after_a_rotation_old_tokens_verify_and_new_ones_use_the_new_key(self) -> None:
        before = TokenSigner(("old",))
        old_token = before.sign(TokenKind.CLICK, DELIVERY, 1)

        after = TokenSigner(("new", "old"))
        new_token = after.sign(TokenKind.CLICK, DELIVERY, 1)

        assert after.verify(old_token, TokenKind.CLICK) is not None
        assert before.verify(new_token, TokenKind.CLICK) is None
        assert TokenSigner(("new",)).verify(new_token, TokenKind.CLICK) is not None
        # The old key dropped from the list: its tokens no longer verify.
        assert TokenSigner(("new",)).verify(old_token, TokenKind.CLICK) is None
