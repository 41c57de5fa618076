"""Who someone is: passwords (argon2), staff tokens (JWT), API keys, and the hospital's single sign-on.

Roles never come from a token: every request reads the account again, so a deactivated account or a
revoked key is refused on its next request, and an identity provider cannot grant carepath roles.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.principals import Principal, PrincipalKind, Role
from store.db import ApiKey, StaffMember, StaffTeam

MAXIMUM_FAILED_SIGN_INS = 5
LOCKOUT = timedelta(minutes=15)
MINIMUM_PASSWORD_LENGTH = 12
# Recording every use of a key would be a write per request; once a minute says enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
API_KEY_PREFIX = "cpk_"
TOKEN_TYPE = "carepath-staff"
SIGN_IN_REFUSED = "wrong email or password, or the account is locked; after 5 failures it locks for 15 minutes"

_hasher = PasswordHasher()
# Verified against for unknown emails, so the time taken does not tell which emails have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class SignInRefused(Exception):
    """One message for every reason: whether an account exists is not told."""


class PasswordRefused(ValueError):
    pass


class TokenInvalid(Exception):
    pass


@dataclass(frozen=True)
class OidcIdentity:
    subject: str
    email: str | None


def one_time_password() -> str:
    """Handed over once, in person; the staff member replaces it (POST /auth/password)."""
    return secrets.token_urlsafe(15)


def hash_password(password: str) -> str:
    if len(password) < MINIMUM_PASSWORD_LENGTH:
        raise PasswordRefused(f"a password needs at least {MINIMUM_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def sign_in(session: AsyncSession, email: str, password: str, now: datetime) -> Principal:
    """The account's principal, or SignInRefused; failures are counted and lock the account for a while.
    The caller commits (the count must be kept whatever the outcome)."""
    member = await session.scalar(select(StaffMember).where(StaffMember.email == email.strip().lower()))
    if member is None:
        verify_password(None, password)
        raise SignInRefused(SIGN_IN_REFUSED)
    locked = member.locked_until is not None and member.locked_until > now
    if not verify_password(member.password_hash, password) or locked or not member.active:
        if not locked:
            member.failed_sign_ins += 1
            if member.failed_sign_ins >= MAXIMUM_FAILED_SIGN_INS:
                member.locked_until, member.failed_sign_ins = now + LOCKOUT, 0
        raise SignInRefused(SIGN_IN_REFUSED)
    if _hasher.check_needs_rehash(member.password_hash):
        member.password_hash = _hasher.hash(password)
    member.failed_sign_ins, member.locked_until, member.last_sign_in_at = 0, None, now
    return await principal_for_staff(session, member.id)


def set_password(member: StaffMember, password: str) -> None:
    """Give an account a password of the staff member's choosing (PasswordRefused if under 12 characters)."""
    member.password_hash = hash_password(password)


async def change_password(session: AsyncSession, staff_id: str, current: str, new: str) -> None:
    member = await session.get(StaffMember, staff_id)
    if member is None or not verify_password(member.password_hash, current):
        raise PasswordRefused("the current password is not right")
    set_password(member, new)


async def principal_for_staff(session: AsyncSession, staff_id: str) -> Principal | None:
    member = await session.get(StaffMember, staff_id)
    if member is None or not member.active:
        return None
    teams = (await teams_of(session, [staff_id]))[staff_id]
    return Principal(PrincipalKind.STAFF, member.id, member.name, _roles(member.roles), frozenset(teams))


async def teams_of(session: AsyncSession, staff_ids: Collection[str]) -> dict[str, list[str]]:
    """Each staff member's teams, by id, in one query however many members are asked about."""
    teams: dict[str, list[str]] = {staff_id: [] for staff_id in staff_ids}
    for staff_id, team_id in await session.execute(select(StaffTeam.staff_id, StaffTeam.team_id).where(
            StaffTeam.staff_id.in_(teams)).order_by(StaffTeam.team_id)):
        teams[staff_id].append(team_id)
    return teams


def _token_keys(secret_keys: list[str]) -> list[bytes]:
    """One key per purpose, derived from each secret: a form link's key never signs a staff token."""
    return [hmac.new(secret.encode(), b"carepath staff token", hashlib.sha256).digest() for secret in secret_keys]


def issue_token(principal: Principal, secret_keys: list[str], ttl: timedelta, now: datetime) -> str:
    """A signed, short-lived token naming the staff member; the newest secret signs it."""
    claims = {"sub": principal.id, "typ": TOKEN_TYPE, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, _token_keys(secret_keys)[-1], algorithm="HS256")


def read_token(token: str, secret_keys: list[str]) -> str:
    """The staff id a token names, if any of the secrets (current or previous) signed it and it is current."""
    for key in reversed(_token_keys(secret_keys)):
        try:
            claims = jwt.decode(token, key, algorithms=["HS256"], options={"require": ["sub", "exp", "iat"]})
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as error:
            raise TokenInvalid(str(error)) from None
        if claims.get("typ") != TOKEN_TYPE:
            raise TokenInvalid("not a carepath staff token")
        return str(claims["sub"])
    raise TokenInvalid("signed by no key of ours")


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(session: AsyncSession, name: str, roles: Collection[str], teams: Collection[str],
                         created_by: str) -> tuple[ApiKey, str]:
    """The new key's record and the key itself, which is never stored and cannot be shown again."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(name=name, prefix=key[:10], secret_hash=_key_hash(key), roles=sorted(roles),
                    teams=sorted(teams), created_by=created_by)
    session.add(record)
    await session.flush()
    return record, key


async def principal_for_api_key(session: AsyncSession, presented: str, now: datetime) -> Principal | None:
    record = await session.scalar(select(ApiKey).where(ApiKey.secret_hash == _key_hash(presented)))
    if record is None or record.revoked_at is not None:
        return None
    if record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION:
        record.last_used_at = now
    return Principal(PrincipalKind.API_KEY, record.id, record.name, _roles(record.roles), frozenset(record.teams))


async def revoke_api_key(session: AsyncSession, key_id: str, now: datetime) -> None:
    record = await session.get(ApiKey, key_id)
    if record is not None and record.revoked_at is None:
        record.revoked_at = now


class OidcVerifier:
    """Bearer tokens from the hospital's identity provider, checked against its published keys (JWKS)."""

    ALGORITHMS = ("RS256", "ES256")  # asymmetric only: no shared secret to forge with

    def __init__(self, issuer: str, audience: str | None, jwks_url: str):
        self._issuer, self._audience = issuer, audience
        self._keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)

    async def identity(self, token: str) -> OidcIdentity | None:
        """Who the token says, if the provider signed it for us and it is current; None otherwise."""
        try:
            # PyJWKClient fetches over blocking HTTP (cached after the first time): keep it off the loop.
            key = await asyncio.to_thread(self._keys.get_signing_key_from_jwt, token)
            claims = jwt.decode(token, key.key, algorithms=list(self.ALGORITHMS), issuer=self._issuer,
                                audience=self._audience, options={"require": ["sub", "exp", "iss"],
                                                                  "verify_aud": self._audience is not None})
        except jwt.PyJWTError:
            return None
        return OidcIdentity(str(claims["sub"]), claims.get("email"))


async def principal_for_oidc(session: AsyncSession, identity: OidcIdentity) -> Principal | None:
    """The account the provider's subject was linked to, or else the active account with its email (then
    linked). Someone the provider knows but carepath does not has no access."""
    member = await session.scalar(select(StaffMember).where(StaffMember.oidc_subject == identity.subject))
    if member is None and identity.email:
        member = await session.scalar(select(StaffMember).where(StaffMember.email == identity.email.strip().lower(),
                                                                StaffMember.oidc_subject.is_(None)))
        if member is not None:
            member.oidc_subject = identity.subject
    return await principal_for_staff(session, member.id) if member is not None else None


async def create_admin(session: AsyncSession, email: str, name: str,
                       roles: Collection[Role] = (Role.ADMIN,)) -> str:
    """A first administrator's account and its one-time password (returned once). Committed."""
    password = one_time_password()
    session.add(StaffMember(name=name, email=email.strip().lower(), roles=sorted(roles), active=True,
                            password_hash=hash_password(password)))
    await session.commit()
    return password


FIRST_ADMIN_EMAIL = "admin@carepath.localhost"


async def ensure_first_admin(session: AsyncSession, roles: Collection[Role] = (Role.ADMIN,)) -> tuple[str, str] | None:
    """On a database with no active administrator, (email, one-time password) of a new one; else None."""
    if await has_admin(session):
        return None
    return FIRST_ADMIN_EMAIL, await create_admin(session, FIRST_ADMIN_EMAIL, "First administrator", roles=roles)


async def has_admin(session: AsyncSession) -> bool:
    accounts = await session.scalars(select(StaffMember.roles).where(StaffMember.active.is_(True)))
    return any(Role.ADMIN in roles for roles in accounts)


def _roles(names: Collection[str]) -> frozenset[Role]:
    """Known roles only: a role name from an older or newer release grants nothing."""
    return frozenset(Role(name) for name in names if name in Role._value2member_map_)
