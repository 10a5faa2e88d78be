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
