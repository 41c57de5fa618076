"""What the activities count, for Prometheus (the worker serves them: worker/metrics.py).

Labels are channels, statuses and kinds of alert, a handful of values each: never an id, never a
patient's details. Counts of what is in the database (open escalations, response rate) are not kept
here but read from it when scraped, so every replica agrees and a restart loses nothing.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TOUCHPOINTS = Counter("carepath_touchpoints", "Message deliveries by channel and outcome: sent, failed, "
                      "or duplicate (already sent by an earlier attempt, so not sent again)",
                      ["channel", "status"])
DELIVERY_LATENESS = Histogram("carepath_delivery_lateness_seconds",
                              "How long after its due time a message was sent (a worker outage shows here)",
                              buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, float("inf")))
OPERATIONS_ALERTS = Counter("carepath_operations_alerts", "Alerts raised to operations (what only a person can "
                            "fix), by what happened, whether or not an operations address is configured", ["what"])
