"""Upward hooks: channel knows nothing of subscribers, which listen here (common.md rule 8).

Sent by `channel.webhook.drain.process_inbound_event` after the event's rows are committed.
"""

from __future__ import annotations

from django.dispatch import Signal

# messages: list[channel.webhook.parsing.InboundMsg], only those seen for the first time (by wamid).
inbound_messages_received = Signal()
# updates: list[channel.webhook.parsing.StatusUpdate] for messages that are not service replies.
statuses_received = Signal()
# preferences: list[channel.webhook.parsing.PreferenceUpdate] (marketing stop / resume, doc §1.6).
preferences_received = Signal()
# user, wa_id, what (a short description): someone played a citizen in the chat simulator.
simulator_used = Signal()
