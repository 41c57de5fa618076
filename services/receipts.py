"""Delivery receipts: what a gateway later says became of a message it took (delivered or not, and why).

The receipt names the gateway's own message id, which delivery kept on the touchpoint when the gateway
took the message; `status` stays `sent` (it is what makes a retried delivery send once), the receipt
goes beside it. Each receipt applied is audited, as the gateway's change to the patient's record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import AccessAudit, Enrollment, TouchpointRecord, utcnow

DeliveryStatus = Literal["delivered", "undelivered"]
MAXIMUM_REASON = 500


@dataclass(frozen=True)
class Receipt:
    provider_message_id: str
    status: DeliveryStatus
    reason: str | None = None


async def apply_receipts(session: AsyncSession, channel: str, receipts: list[Receipt], client_ip: str | None,
                         gateway: str) -> list[str]:
    """Record each receipt on its touchpoint and commit; returns the ids that name no message of ours
    (yet: a receipt can overtake the commit that records the gateway's id), for the gateway to send again."""
    unknown = []
    for receipt in receipts:
        found = (await session.execute(
            select(TouchpointRecord, Enrollment.patient_id).join(Enrollment, Enrollment.id == TouchpointRecord.enrollment_id)
            .where(TouchpointRecord.channel == channel,
                   TouchpointRecord.provider_message_id == receipt.provider_message_id))).first()
        if found is None:
            unknown.append(receipt.provider_message_id)
            continue
        touchpoint, patient_id = found
        touchpoint.delivery_status = receipt.status
        touchpoint.delivery_reason = receipt.reason[:MAXIMUM_REASON] if receipt.reason else None
        touchpoint.delivery_reported_at = utcnow()
        session.add(AccessAudit(at=utcnow(), actor_kind="gateway", actor_id=gateway, actor_roles="",
                                action=f"touchpoint.{receipt.status}", outcome="allowed", client_ip=client_ip,
                                patient_id=patient_id, enrollment_id=touchpoint.enrollment_id,
                                target=f"{touchpoint.step_id}/{touchpoint.occurrence}/{touchpoint.purpose}"))
    await session.commit()
    return unknown


async def deliveries_of(session: AsyncSession, enrollment_id: str) -> list[TouchpointRecord]:
    """Every message of the enrollment that was sent or attempted, with its receipt, in the order due."""
    return list(await session.scalars(select(TouchpointRecord).where(TouchpointRecord.enrollment_id == enrollment_id)
                                      .order_by(TouchpointRecord.due_at, TouchpointRecord.id)))


async def record_forged(session: AsyncSession, gateway: str, client_ip: str | None,
                        action: str = "touchpoint.receipt") -> None:
    """A receipt (or a patient's reply) whose signature does not verify: refused, and audited as a refused attempt."""
    session.add(AccessAudit(at=utcnow(), actor_kind="gateway", actor_id=gateway, actor_roles="",
                            action=action, outcome="denied", client_ip=client_ip))
    await session.commit()
