"""Upward hooks: channel imports nothing of the other apps, so subscribers listen here.

Sent by the webhook processor (`channel.webhook.drain`) inside the batch's transaction; each
receiver returns a list of problem lines, written on the webhook's archive row.
"""

from __future__ import annotations

from django.dispatch import Signal

# messages: list[channel.webhook.parsing.InboundMsg], only those seen for the first time (wamid).
inbound_messages_received = Signal()
# updates: list[channel.webhook.parsing.StatusUpdate] for messages that are not service replies.
statuses_received = Signal()
# preferences: list[channel.webhook.parsing.PreferenceUpdate] (marketing stop / resume).
preferences_received = Signal()
# user, wa_id, what (a short description): someone played a citizen in the chat simulator.
simulator_used = Signal()
# user (None for the nightly task), result (channel.graph.templates.SyncResult): the
# message templates were read from Meta; what changed belongs in the audit log.
templates_synced = Signal()
