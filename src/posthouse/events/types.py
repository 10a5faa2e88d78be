"""Event vocabulary (seed 004): what can happen to a delivery."""

from enum import StrEnum


class EventType(StrEnum):
    DELIVERY = "Delivery"
    DELIVERY_DELAY = "DeliveryDelay"
    BOUNCE = "Bounce"
    COMPLAINT = "Complaint"
    REJECT = "Reject"
    OPEN = "Open"
    CLICK = "Click"
    UNSUBSCRIBE = "Unsubscribe"


# Seed 004's derived state of one recipient's copy, lowest precedence first: an email
# with a bounce and a complaint is "complained".
STATES = ("sent", "delivered", "rejected", "bounced", "complained")
STATE_OF_EVENT = {
    EventType.DELIVERY: "delivered",
    EventType.REJECT: "rejected",
    EventType.BOUNCE: "bounced",
    EventType.COMPLAINT: "complained",
}


def lower_states(state: str) -> tuple[str, ...]:
    """The states ``state`` takes precedence over."""
    return STATES[: STATES.index(state)]
