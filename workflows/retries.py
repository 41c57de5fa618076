"""How long the pathway workflow keeps trying each kind of activity, and how long one attempt may take."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Runs started before deliveries waited out outages: about an hour of attempts, then recorded as failed.
DELIVERY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=10), maximum_attempts=10)
# A message that cannot go (the mail relay down for a night) is tried again every few minutes, inside
# the pathway's send window, for up to a day; only then is it failed, and taken to the operations team.
# Each attempt stays bounded so a hung SMTP server cannot hold one forever.
DELIVERY_OUTAGE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                                    maximum_interval=timedelta(minutes=10))
DELIVERY_GIVE_UP = timedelta(hours=24)
DELIVERY_ATTEMPT_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                                maximum_interval=timedelta(minutes=5))
BOOKKEEPING_STALL = timedelta(minutes=30)
ALERT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1),
                          maximum_attempts=5)
# Screening sits between a patient's answer and the safety net: a few quick retries, then the worse case.
SCREENING_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                              maximum_interval=timedelta(seconds=4), maximum_attempts=4)
SCREENING_ATTEMPT_TIMEOUT = timedelta(seconds=10)
