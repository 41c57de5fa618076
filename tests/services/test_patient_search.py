"""Finding a patient by name, record number or phone, only among those the clinician's teams follow."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.patients import SearchRefused, patient_names, search_patients
from services.principals import Principal, PrincipalKind, Role
from store.db import Enrollment, EnrollmentTeam, Patient

MIDWIFE = Principal(PrincipalKind.STAFF, "st_midwife", "Wang Fang", frozenset({Role.CLINICIAN}),
                    frozenset({"midwives"}))
SURGEON = Principal(PrincipalKind.STAFF, "st_surgeon", "Zhao Lei", frozenset({Role.CLINICIAN}),
                    frozenset({"surgery"}))
HOSPITAL_SYSTEM = Principal(PrincipalKind.API_KEY, "key_his", "HIS", frozenset({Role.INTEGRATION}))


@pytest.fixture
async def sessions(database):
    async with database() as session:
        for patient_id, given, family, number, phone, team in [
                ("pt_li", "Wei", "Li", "MRN-001", "+86 138 0013-8000", "midwives"),
                ("pt_liu", "Na", "Liu", "MRN-002", "13900139000", "midwives"),
                ("pt_lin", "Wei", "Lin", "MRN-003", None, "surgery")]:
            session.add(Patient(id=patient_id, given_name=given, family_name=family, hospital_number=number,
                                phone=phone, locale="zh-CN", timezone="Asia/Shanghai"))
            await session.flush()
            session.add(Enrollment(id=f"en_{patient_id}", patient_id=patient_id, pathway_id="p", pathway_version=1,
                                   anchor=datetime.now(UTC), timezone="Asia/Shanghai", request_fingerprint="x"))
            await session.flush()
            session.add(EnrollmentTeam(enrollment_id=f"en_{patient_id}", team_id=team))
        await session.commit()
    return database


@pytest.mark.parametrize(("text", "found"), [
    ("wei", ["pt_li"]),             # the surgery team's Wei Lin is not the midwife's to find
    ("Li Wei", ["pt_li"]),
    ("LiWei", ["pt_li"]),
    ("mrn-002", ["pt_liu"]),
    ("13800138000", ["pt_li"]),    # the digits of a phone typed with spaces and a dash
    ("0013 8000", ["pt_li"]),
    ("Li", ["pt_li", "pt_liu"]),
])
async def test_a_midwife_finds_her_teams_patients_by_name_number_or_phone(sessions, text, found):
    async with sessions() as session:
        assert [patient.id for patient in await search_patients(session, MIDWIFE, text)] == found


async def test_each_team_finds_only_its_own_and_a_hospital_system_finds_all(sessions):
    async with sessions() as session:
        assert [patient.id for patient in await search_patients(session, SURGEON, "wei")] == ["pt_lin"]
        assert {patient.id for patient in await search_patients(session, HOSPITAL_SYSTEM, "wei")} == {"pt_li", "pt_lin"}


async def test_a_search_too_short_to_mean_anything_is_refused(sessions):
    async with sessions() as session:
        with pytest.raises(SearchRefused, match="at least two characters"):
            await search_patients(session, MIDWIFE, " w ")


async def test_a_list_of_enrollments_shows_each_patients_name_family_name_first(sessions):
    async with sessions() as session:
        assert await patient_names(session, ["en_pt_li", "en_pt_lin", "en_missing"]) == {
            "en_pt_li": "Li Wei", "en_pt_lin": "Lin Wei"}
        assert await patient_names(session, []) == {}
