"""Citizens, the topics they chose, the consent ledger, one delivery row per post × person,
and the figures kept for the screens: one module per concern, all importable from here."""

from subscribers.models.counts import ActiveCount, DashboardFigure, PostCount, TopicCount
from subscribers.models.deliveries import Delivery, DeliveryStatus, Rate
from subscribers.models.people import (
    CONSENT_STATE_KINDS,
    ConsentEvent,
    DigestPreference,
    ImportRow,
    Subscriber,
    SubscriberStatus,
    Subscription,
    mask_phone,
)

__all__ = [
    "CONSENT_STATE_KINDS",
    "ActiveCount",
    "ConsentEvent",
    "DashboardFigure",
    "Delivery",
    "DeliveryStatus",
    "DigestPreference",
    "ImportRow",
    "PostCount",
    "Rate",
    "Subscriber",
    "SubscriberStatus",
    "Subscription",
    "TopicCount",
    "mask_phone",
]
