"""Identity on its own, on a real migrated database: passwords and lockout, staff tokens and key
rotation, API keys, and single sign-on against a JWKS the test serves itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import rsa

from services.accounts import create_staff
from services.identity import (
    FIRST_ADMIN_EMAIL,
    LOCKOUT,
    OidcVerifier,
    PasswordRefused,
    SignInRefused,
    TokenInvalid,
    create_api_key,
    ensure_first_admin,
    issue_token,
    principal_for_api_key,
    principal_for_oidc,
    read_token,
    revoke_api_key,
    set_password,
    sign_in,
)
from services.principals import PrincipalKind, Role
from store.db import (
    ApiKey,
    StaffMember,
    TeamRecord,
)
from tests.identity_provider import IdentityProvider

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OLD_SECRET, NEW_SECRET = "the secret before the rotation, 32+", "the secret after the rotation, 32 plus"


async def new_staff(database, email: str = "li.na@hospital.example", teams=("midwives",)) -> tuple[str, str]:
    async with database() as session:
        session.add_all(TeamRecord(id=team, name=team, email=f"{team}@hospital.example") for team in teams)
        member, password = await create_staff(session, name="Li Na", email=email, job_title="midwife",
                                              roles=[Role.CLINICIAN], teams=teams)
        await session.commit()
        return member.id, password


async def attempt(database, email: str, password: str, now: datetime):
    async with database() as session:
        try:
            return await sign_in(session, email, password, now)
        finally:
            await session.commit()


async def test_a_right_password_signs_in_whatever_the_case_of_the_email(database):
    staff_id, password = await new_staff(database)
    principal = await attempt(database, "Li.Na@Hospital.Example", password, NOW)
    assert (principal.kind, principal.id, principal.roles, principal.teams) == (
        PrincipalKind.STAFF, staff_id, frozenset({Role.CLINICIAN}), frozenset({"midwives"}))
    async with database() as session:
        member = await session.get(StaffMember, staff_id)
        assert member.password_hash.startswith("$argon2id$") and password not in member.password_hash
        assert member.last_sign_in_at == NOW


async def test_five_failures_lock_the_account_for_fifteen_minutes(database):
    _, password = await new_staff(database)
    for _ in range(5):
        with pytest.raises(SignInRefused):
            await attempt(database, "li.na@hospital.example", "a wrong guess here", NOW)
    with pytest.raises(SignInRefused) as locked:
        await attempt(database, "li.na@hospital.example", password, NOW + LOCKOUT - timedelta(seconds=1))
    with pytest.raises(SignInRefused) as unknown:
        await attempt(database, "nobody@hospital.example", password, NOW)
    assert str(locked.value) == str(unknown.value)  # nothing tells a locked account from a missing one
    assert (await attempt(database, "li.na@hospital.example", password, NOW + LOCKOUT)).roles == {Role.CLINICIAN}


async def test_a_success_clears_earlier_failures(database):
    _, password = await new_staff(database)
    for _ in range(4):
        with pytest.raises(SignInRefused):
            await attempt(database, "li.na@hospital.example", "a wrong guess here", NOW)
    await attempt(database, "li.na@hospital.example", password, NOW)
    with pytest.raises(SignInRefused):
        await attempt(database, "li.na@hospital.example", "a wrong guess here", NOW)
    assert await attempt(database, "li.na@hospital.example", password, NOW)


async def test_a_deactivated_account_cannot_sign_in(database):
    staff_id, password = await new_staff(database)
    async with database() as session:
        (await session.get(StaffMember, staff_id)).active = False
        await session.commit()
    with pytest.raises(SignInRefused):
        await attempt(database, "li.na@hospital.example", password, NOW)


async def test_staff_tokens_expire_and_survive_a_key_rotation(database):
    staff_id, password = await new_staff(database)
    principal = await attempt(database, "li.na@hospital.example", password, NOW)
    now = datetime.now(UTC)
    token = issue_token(principal, [OLD_SECRET], timedelta(minutes=60), now)
    assert read_token(token, [OLD_SECRET]) == staff_id
    assert read_token(token, [OLD_SECRET, NEW_SECRET]) == staff_id  # signed before the rotation
    assert read_token(issue_token(principal, [OLD_SECRET, NEW_SECRET], timedelta(minutes=5), now),
                      [NEW_SECRET]) == staff_id
    for refused, keys in ((token, ["someone else's secret, as long as ours is"]), (token[:-4] + "AAAA", [OLD_SECRET]),
                          (issue_token(principal, [OLD_SECRET], timedelta(minutes=1), now - timedelta(hours=1)),
                           [OLD_SECRET]),
                          (jwt.encode({"sub": staff_id, "iat": now, "exp": now + timedelta(minutes=5)}, OLD_SECRET,
                                      algorithm="HS256"), [OLD_SECRET])):
        with pytest.raises(TokenInvalid):
            read_token(refused, keys)


async def test_an_api_key_is_stored_hashed_used_and_revoked(database):
    async with database() as session:
        record, key = await create_api_key(session, "HIS", ["integration"], [], "st_admin")
        await session.commit()
    assert key.startswith("cpk_") and key not in record.secret_hash and record.prefix == key[:10]
    async with database() as session:
        principal = await principal_for_api_key(session, key, NOW)
        await session.commit()
    assert (principal.kind, principal.roles) == (PrincipalKind.API_KEY, frozenset({Role.INTEGRATION}))
    async with database() as session:
        assert await principal_for_api_key(session, key + "x", NOW) is None
        await revoke_api_key(session, record.id, NOW)
        await session.commit()
    async with database() as session:
        assert await principal_for_api_key(session, key, NOW) is None


@pytest.fixture
def provider():
    with IdentityProvider() as idp:
        yield idp


async def test_single_sign_on_maps_the_provider_s_user_to_a_carepath_account(database, provider: IdentityProvider):
    staff_id, _ = await new_staff(database)
    verifier = OidcVerifier(provider.ISSUER, "carepath", provider.jwks_url)
    identity = await verifier.identity(provider.token())
    async with database() as session:
        principal = await principal_for_oidc(session, identity)
        await session.commit()
    assert (principal.id, principal.roles) == (staff_id, frozenset({Role.CLINICIAN}))
    # Linked by subject from now on: a changed email at the provider still finds the account.
    renamed = await verifier.identity(provider.token(email="na.li@hospital.example"))
    async with database() as session:
        assert (await principal_for_oidc(session, renamed)).id == staff_id
    stranger = await verifier.identity(provider.token(sub="other", email="someone@hospital.example"))
    async with database() as session:
        assert await principal_for_oidc(session, stranger) is None


async def test_single_sign_on_refuses_tokens_not_made_for_us(provider: IdentityProvider):
    verifier = OidcVerifier(provider.ISSUER, "carepath", provider.jwks_url)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    past = datetime.now(UTC) - timedelta(hours=1)
    for token in (provider.token(iss="https://elsewhere.example"), provider.token(aud="another-app"),
                  provider.token(iat=past, exp=past + timedelta(minutes=5)), provider.token(key=forger),
                  jwt.encode({"iss": provider.ISSUER, "aud": "carepath", "sub": "x",
                              "exp": datetime.now(UTC) + timedelta(minutes=5)}, "a secret shared with nobody, long enough", algorithm="HS256")):
        assert await verifier.identity(token) is None


async def test_a_chosen_password_needs_twelve_characters_and_an_old_hash_is_renewed(database):
    staff_id, _ = await new_staff(database)
    async with database() as session:
        member = await session.get(StaffMember, staff_id)
        with pytest.raises(PasswordRefused):
            set_password(member, "short pass")
        # A hash made with weaker parameters than today's is replaced at the next sign-in.
        member.password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash("a password long enough")
        await session.commit()
    await attempt(database, "li.na@hospital.example", "a password long enough", NOW)
    async with database() as session:
        renewed = (await session.get(StaffMember, staff_id)).password_hash
    assert "t=1," not in renewed and PasswordHasher().verify(renewed, "a password long enough")


async def test_a_key_s_use_is_recorded_at_most_once_a_minute(database):
    async with database() as session:
        record, key = await create_api_key(session, "HIS", ["integration"], ["midwives"], "st_admin")
        await session.commit()
    for now in (NOW, NOW + timedelta(seconds=59), NOW + timedelta(seconds=61)):
        async with database() as session:
            assert (await principal_for_api_key(session, key, now)).teams == {"midwives"}
            await session.commit()
        async with database() as session:
            seen = (await session.get(ApiKey, record.id)).last_used_at
        assert seen == (NOW + timedelta(seconds=61) if now > NOW + timedelta(minutes=1) else NOW)


async def test_the_first_administrator_is_made_once(database):
    async with database() as session:
        email, password = await ensure_first_admin(session)
    assert email == FIRST_ADMIN_EMAIL
    assert (await attempt(database, email, password, NOW)).roles == {Role.ADMIN}
    async with database() as session:
        assert await ensure_first_admin(session) is None
