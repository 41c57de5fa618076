"""Whether a channel may carry messages to a patient: the newest consent decision per channel.

Here, beside the tables, so that delivery (an activity) and the consent service ask the same question
the same way. A withdrawal (opt-out, STOP reply, unsubscribe link) always closes the channel; with the
site's CAREPATH_REQUIRE_CONSENT a channel without a recorded grant is closed too.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.db import ConsentRecord

GRANTED = "granted"
WITHDRAWN = "withdrawn"


# Built once (it is asked before every message), the patient bound at each call.
_DECISIONS_IN_FORCE = select(ConsentRecord).where(ConsentRecord.id.in_(
    select(func.max(ConsentRecord.id)).where(ConsentRecord.patient_id == bindparam("patient_id"))
    .group_by(ConsentRecord.channel)))


async def consent_decisions(session: AsyncSession, patient_id: str) -> dict[str, ConsentRecord]:
    """The decision in force per channel: each channel's newest row."""
    rows = await session.scalars(_DECISIONS_IN_FORCE, {"patient_id": patient_id})
    return {row.channel: row for row in rows}


async def allowed_channels(session: AsyncSession, patient_id: str, channels: Iterable[str], *,
                           require_consent: bool) -> list[str]:
    """`channels`, in their order, without those the patient may not be contacted on."""
    decisions = await consent_decisions(session, patient_id)

    def allowed(channel: str) -> bool:
        decision = decisions.get(channel)
        return decision.decision == GRANTED if decision else not require_consent

    return [channel for channel in channels if allowed(channel)]


async def channel_allowed(session: AsyncSession, patient_id: str, channel: str, *, require_consent: bool) -> bool:
    return bool(await allowed_channels(session, patient_id, [channel], require_consent=require_consent))
