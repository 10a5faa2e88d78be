"""The bounce classifier, table-driven: every rule's own reply, then more real replies
(issue 21's among them), DSN lines, and our own errors."""

import pytest

from posthouse.delivery.classify import (
    PERMANENT,
    TRANSIENT,
    UNDETERMINED,
    classify_dsn,
    classify_line,
    classify_reply,
    rules,
)

RULES = rules()


@pytest.mark.parametrize("rule_id", sorted(RULES.examples))
def test_each_rule_decides_the_reply_it_was_written_for(rule_id: str) -> None:
    assert classify_line(RULES.examples[rule_id]).rule == rule_id


def test_there_are_at_least_sixty_rules_with_their_replies() -> None:
    assert len(RULES.examples) >= 60


# (reply, class, subclass): replies as servers send them, beyond the rules' own examples.
REPLIES = [
    # issue 21: the replies that suppressed good recipients and suspended the workspace
    (
        "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        "block",
        "ip_blocklisted",
    ),
    ("550 5.7.606 Access denied, banned sending IP [192.0.2.1]", "block", "ip_blocklisted"),
    ("554 5.7.1 rejected due to the sending MTA's poor reputation", "block", "reputation"),
    (
        "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's "
        "DMARC policy",
        "auth",
        "dmarc",
    ),
    ("554 5.7.1 Message rejected as spam", "content", "spam"),
    ("451 4.7.1 Service unavailable, please try again later", "soft", "throttled"),
    # hard bounces stay hard
    (
        "550 5.1.1 <joe@example.com>: Recipient address rejected: User unknown in virtual "
        "mailbox table",
        "hard",
        "no_mailbox",
    ),
    ("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", "hard", "no_mailbox"),
    ("511 sorry, no mailbox here by that name (#5.1.1)", "hard", "no_mailbox"),
    ("550 Requested action not taken: mailbox unavailable", "hard", "no_mailbox"),
    (
        "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302)",
        "hard",
        "no_mailbox",
    ),
    (
        "554 delivery error: dd This user doesn't have a yahoo.com account (joe@yahoo.com) [0] "
        "- mta1234.mail.bf1.yahoo.com",
        "hard",
        "no_mailbox",
    ),
    ("550 No Such User Here", "hard", "no_mailbox"),
    ("550 Unrouteable address", "hard", "no_mailbox"),
    (
        "550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550",
        "hard",
        "no_mailbox",
    ),
    ("550 5.1.1 <joe@icloud.com>: user does not exist", "hard", "no_mailbox"),
    ("556 5.1.10 example.net accepts no mail (null MX)", "hard", "bad_domain"),
    # temporary replies are never hard
    (
        "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents "
        "additional messages from being delivered.",
        "soft",
        "temporary",
    ),
    ("452 4.2.2 The email account that you tried to reach is over quota.", "soft", "mailbox_full"),
    (
        "450 4.1.1 <joe@example.com>: Recipient address rejected: unverified address",
        "soft",
        "temporary",
    ),
    # blocks
    (
        "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
        "or user complaints - 4.16.55.1",
        "block",
        "reputation",
    ),
    (
        "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in "
        "Spamhaus's list; see http://postmaster.yahoo.com/550-bl23.html",
        "block",
        "ip_blocklisted",
    ),
    (
        "554 resimta-ch2-18v.sys.comcast.net comcast 192.0.2.1 found on one or more DNSBLs, see "
        "http://postmaster.comcast.net/smtp-error-codes.php#BL000001",
        "block",
        "ip_blocklisted",
    ),
    (
        "553 5.3.0 alph098 DNSBL:RBL 521< 192.0.2.1 >_is_blocked.For assistance forward this "
        "email to abuse_rbl@abuse-att.net",
        "block",
        "ip_blocklisted",
    ),
    (
        "554 Service unavailable; Client host [192.0.2.1] blocked using Barracuda Reputation; "
        "http://www.barracudanetworks.com/reputation/?r=1&ip=192.0.2.1",
        "block",
        "ip_blocklisted",
    ),
    (
        "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus. To request "
        "removal from this list see https://www.spamhaus.org/query/ip/192.0.2.1 (AS3130).",
        "block",
        "ip_blocklisted",
    ),
    (
        "421-4.7.0 This message is suspicious due to the very low reputation of the sending IP "
        "address. To protect our users from spam, mail sent from your IP address has been "
        "temporarily rate limited.",
        "block",
        "reputation",
    ),
    (
        "550 5.7.0 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=192.0.2.1",
        "block",
        "ip_blocklisted",
    ),
    (
        "554-Transaction failed\n554-Reject due to policy restrictions.\n554 For explanation visit "
        "https://www.gmx.net/mail/senderguidelines?c=bl",
        "block",
        "policy",
    ),
    (
        "550 Envelope blocked - User Entry - https://community.mimecast.com/docs/DOC-1369#550",
        "block",
        "policy",
    ),
    # authentication and content
    (
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail "
        "requires all senders to authenticate with either SPF or DKIM.",
        "auth",
        "unauthenticated",
    ),
    ("550 5.7.1 Unauthenticated email is not accepted from this domain", "auth", "unauthenticated"),
    ("550 5.7.23 SPF validation failed", "auth", "spf"),
    (
        "554 5.7.1 [CS01] Message rejected due to local policy. Please visit "
        "https://support.apple.com/en-us/HT204137",
        "content",
        "spam",
    ),
    (
        "552-5.7.0 This message was blocked because its content presents a potential security "
        "issue.",
        "content",
        "virus",
    ),
    ("550 This message was classified as SPAM and may not be delivered", "content", "spam"),
    # size
    ("552 5.3.4 Message too big for system", "soft", "message_too_large"),
    # unknown stays unknown
    ("554 Transaction failed", "unknown", "unknown"),
    ("550 Rejected", "unknown", "unknown"),
]


@pytest.mark.parametrize(("reply", "klass", "subclass"), REPLIES)
def test_real_replies(reply: str, klass: str, subclass: str) -> None:
    verdict = classify_line(reply)
    assert (verdict.klass, verdict.subclass) == (klass, subclass), verdict.rule


@pytest.mark.parametrize(
    ("reply", "bounce_type", "bounce_subtype"),
    [
        ("550 5.1.1 unknown user", PERMANENT, "NoEmail"),
        ("550 5.2.1 The email account that you tried to reach is disabled.", PERMANENT, "General"),
        ("552 5.2.2 mailbox full", TRANSIENT, "MailboxFull"),
        ("552 5.3.4 Message size exceeds fixed maximum message size", TRANSIENT, "MessageTooLarge"),
        ("554 5.7.1 Message rejected as spam", TRANSIENT, "ContentRejected"),
        ("550 5.7.606 Access denied, banned sending IP [192.0.2.1]", TRANSIENT, "Blocked"),
        ("550 5.7.26 DMARC policy", TRANSIENT, "AuthFailure"),
        ("554 Transaction failed", UNDETERMINED, "General"),
    ],
)
def test_seed_004_bounce_type_and_subtype(
    reply: str, bounce_type: str, bounce_subtype: str
) -> None:
    verdict = classify_line(reply)
    assert (verdict.bounce_type, verdict.bounce_subtype) == (bounce_type, bounce_subtype)


def test_only_hard_bounces_suppress() -> None:
    assert classify_line("550 5.1.1 unknown").suppresses
    for reply in [r for r, klass, _ in REPLIES if klass != "hard"]:
        assert not classify_line(reply).suppresses, reply


def test_retries_that_ran_out_read_as_transient() -> None:
    expired = classify_line("451 4.7.1 Try again later").expired()
    assert expired.bounce_type == TRANSIENT
    assert classify_line("550 5.1.1 unknown").expired().bounce_type == TRANSIENT


@pytest.mark.parametrize(
    ("status", "diagnostic", "klass", "subclass"),
    [
        (
            "5.1.1",
            "smtp; 550 5.1.1 <joe@example.com>: Recipient address rejected",
            "hard",
            "no_mailbox",
        ),
        ("5.0.0", "smtp; 550 No such user (joe@example.com)", "hard", "no_mailbox"),
        ("5.2.2", "smtp; 552 5.2.2 Mailbox full", "soft", "mailbox_full"),
        (
            "5.7.1",
            "smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
            "zen.spamhaus.org",
            "block",
            "ip_blocklisted",
        ),
        (
            "5.7.1",
            "smtp; 550 5.7.1 Email rejected per DMARC policy for example.net",
            "auth",
            "dmarc",
        ),
        ("5.7.1", "smtp; 554 5.7.1 Message rejected as spam", "content", "spam"),
        ("4.4.7", "smtp; 451 4.4.1 No answer from host", "soft", "temporary"),
        ("5.4.7", None, "soft", "temporary"),
        ("5.0.0", None, "unknown", "unknown"),
        (None, "X-Postfix; host mx.example.net said: 550 5.1.1 user unknown", "hard", "no_mailbox"),
    ],
)
def test_dsn_lines(status: str | None, diagnostic: str | None, klass: str, subclass: str) -> None:
    verdict = classify_dsn(status, diagnostic)
    assert (verdict.klass, verdict.subclass) == (klass, subclass), verdict.rule


@pytest.mark.parametrize(
    ("code", "text", "klass", "subclass"),
    [
        (None, "4.4.3 DNS: The DNS operation timed out.", "infrastructure", "dns"),
        (
            None,
            "4.7.10 mx.example.net does not offer STARTTLS and TLS is required",
            "infrastructure",
            "tls",
        ),
        (
            None,
            "timed out: Timed out connecting to 192.0.2.1 on port 25",
            "infrastructure",
            "timeout",
        ),
        (
            None,
            "ConnectionRefusedError: [Errno 111] Connection refused",
            "infrastructure",
            "connection",
        ),
        (None, "5.1.2 The DNS query name does not exist: nowhere.invalid.", "hard", "bad_domain"),
        (535, "5.7.8 Error: authentication failed", "infrastructure", "relay_auth"),
        (None, "unexpected ValueError: boom", "infrastructure", "other"),
    ],
)
def test_our_own_failures(code: int | None, text: str, klass: str, subclass: str) -> None:
    verdict = classify_reply(code, text)
    assert (verdict.klass, verdict.subclass) == (klass, subclass), verdict.rule
