"""The console's language is the staff member's own choice, kept on their account."""

from __future__ import annotations

import pytest

from services.accounts import LocaleRefused, create_staff, set_locale
from services.principals import Role
from store.db import StaffMember


async def test_a_new_account_speaks_chinese_until_its_owner_chooses_english(database):
    async with database() as session:
        member, _ = await create_staff(session, name="Wang Fang", email="wf@staff.test", job_title=None,
                                       roles=[Role.CLINICIAN], teams=[])
        await session.commit()
        assert member.locale == "zh-CN"
        await set_locale(session, member.id, "en")
        await session.commit()
    async with database() as session:
        assert (await session.get(StaffMember, member.id)).locale == "en"


async def test_a_language_the_console_does_not_speak_is_refused_and_nothing_changes(database):
    async with database() as session:
        member, _ = await create_staff(session, name="Li Na", email="ln@staff.test", job_title=None,
                                       roles=[Role.CLINICIAN], teams=[])
        await session.commit()
        with pytest.raises(LocaleRefused, match="not 'fr'"):
            await set_locale(session, member.id, "fr")
        await session.commit()
    async with database() as session:
        assert (await session.get(StaffMember, member.id)).locale == "zh-CN"
