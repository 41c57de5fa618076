"""Who is asking: the authenticated principal every route acts as, and the roles it may hold.

Roles are deny-by-default grants: a route names the roles it admits and nothing else gets in.
A principal's teams scope what a clinician sees (their teams' worklists, and the patients and
enrollments those teams are involved in).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"                        # accounts, API keys, teams
    CLINICAL_MANAGER = "clinical_manager"  # deploy pathways, team routing
    CLINICIAN = "clinician"                # their teams' worklist, patients and enrollments
    INTEGRATION = "integration"            # a hospital system: upsert patients, enroll, read status
    AUDITOR = "auditor"                    # read the audit


class PrincipalKind(StrEnum):
    STAFF = "staff"
    API_KEY = "api_key"


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    id: str
    name: str
    roles: frozenset[Role]
    teams: frozenset[str] = frozenset()

    def has_any(self, roles: frozenset[Role] | set[Role]) -> bool:
        return bool(self.roles & roles)
