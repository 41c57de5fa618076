"""Telling the site's operations staff what only a person can fix. Nothing here reads the database:
an alert must go out when the database is what is failing."""

from __future__ import annotations

from temporalio import activity

from activities.channels import EmailChannel, OutgoingMessage, Recipient
from activities.metrics import OPERATIONS_ALERTS
from workflows.contracts import ALERT_OPERATIONS, OperationsAlert


class OperationsActivities:
    def __init__(self, email: EmailChannel, address: str | None):
        self._email = email
        self._address = address

    @activity.defn(name=ALERT_OPERATIONS)
    async def alert_operations(self, alert: OperationsAlert) -> bool:
        """Log the alert (always) and email the operations address (when one is configured): whether mailed."""
        activity.logger.error("operations alert: %s, enrollment %s: %s", alert.what, alert.enrollment_id, alert.detail)
        info = activity.info()
        if info.attempt == 1:  # once per alert, however often mailing it is retried
            OPERATIONS_ALERTS.labels(alert.what).inc()
        if not self._address:
            return False
        await self._email.send(Recipient(email=self._address, phone=None), OutgoingMessage(
            subject=f"[carepath operations] {alert.what} (enrollment {alert.enrollment_id})",
            body=f"{alert.what}\n\nenrollment: {alert.enrollment_id}\n{alert.detail}\n\n"
                 f"workflow: {info.workflow_id}\n",
            message_id=f"<ops.{info.workflow_run_id}.{info.activity_id}@carepath>"))
        return True
