"""The envelope sender (Return-Path) of a delivery."""

from posthouse.db.models import Message


def envelope_sender(message: Message) -> str:
    return message.from_email
