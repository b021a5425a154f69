"""What delivery services announce for the workers to act on.

subscribers.tasks sits above the services (its tasks call them), so a service never imports it:
it sends a signal here, and SubscribersConfig.ready() connects the tasks' helper to it.
"""

from __future__ import annotations

from django.dispatch import Signal

# post_id: the post has deliveries due now that no sender may be working on (just published,
# queued again, or found by the sweeper): its senders must be woken once the caller commits.
senders_needed = Signal()
