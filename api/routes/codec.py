"""The codec server for Temporal's UI and CLI (`--codec-endpoint`): payloads decrypted only for signed-in
staff who may read patient data, and each use audited. Encrypting is the application's job alone,
so there is no /encode."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from google.protobuf.json_format import ParseError

from api.deps import ServicesDep, SessionDep
from api.schemas import Message
from api.security import Access, allow
from services.payload_codec import (
    PayloadNotDecrypted,
    UnknownPayloadKey,
    decode_payloads,
)
from services.principals import Role

router = APIRouter(prefix="/codec", tags=["codec"])


@router.post("/decode", responses={400: {"model": Message}, 422: {"model": Message}},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "properties": {"payloads": {"type": "array", "items": {"type": "object"}}}}}}}})
async def decode(request: Request, services: ServicesDep, session: SessionDep,
                 access: Annotated[Access, Depends(allow(Role.CLINICIAN, Role.AUDITOR))],
                 namespace: Annotated[str | None, Header(alias="X-Namespace", max_length=200)] = None) -> dict[str, Any]:
    """Decrypt workflow payloads (`{"payloads": [...]}`, as Temporal's codec-server protocol has them)."""
    try:
        decoded = await decode_payloads(services.codec, await request.body())
    except (json.JSONDecodeError, ParseError, UnicodeDecodeError) as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not a codec request: {error}") from None
    except (UnknownPayloadKey, PayloadNotDecrypted) as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    await access.read(session, "temporal.payloads.decode", target=namespace)
    return decoded
