from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from api.deps import RegistryDep, SessionDep
from api.schemas import (
    MAXIMUM_COUNT,
    InvalidPathway,
    Message,
    PathwayDetail,
    PathwaySummary,
)
from api.security import Access, allow
from language.loader import DocumentInvalid
from services.principals import Role
from services.registry import (
    DeployedPathway,
    PathwayRegistry,
    UnknownPathway,
    VersionConflict,
)

router = APIRouter(prefix="/pathways", tags=["pathways"])

# Pathways hold no patient data: everyone signed in may read them; only clinical managers deploy.
Reader = Annotated[Access, Depends(allow(*Role))]
Manager = Annotated[Access, Depends(allow(Role.CLINICAL_MANAGER))]
# JSON is YAML too. Not text/plain: a browser may send that cross-site without asking first.
SOURCE_MEDIA_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json")
# Problems in a posted document are reported as `<body>:line:col: field: message`, like `<stdin>`.
POSTED_SOURCE = "<body>"


def summary(deployed: DeployedPathway) -> PathwaySummary:
    pathway = deployed.pathway
    return PathwaySummary(id=pathway.id, version=pathway.version, title=pathway.title, anchor=pathway.anchor,
                          locales=pathway.locales)


async def detail(registry: PathwayRegistry, deployed: DeployedPathway) -> PathwayDetail:
    return PathwayDetail(**summary(deployed).model_dump(), versions=await registry.versions(deployed.pathway.id),
                         sha256=deployed.sha256, deployed_at=deployed.deployed_at, source=deployed.source,
                         definition=deployed.pathway)


@router.get("", response_model=list[PathwaySummary])
async def list_pathways(registry: RegistryDep, access: Reader) -> list[PathwaySummary]:
    """List the newest version of every deployed pathway."""
    return [summary(deployed) for deployed in await registry.latest()]


@router.get("/{pathway_id}", response_model=PathwayDetail, responses={404: {"model": Message}})
async def read_pathway(pathway_id: str, registry: RegistryDep, access: Reader,
                       version: Annotated[int | None, Query(ge=1, le=MAXIMUM_COUNT)] = None) -> PathwayDetail:
    """Read a pathway: its newest version, or the one given by ?version=."""
    try:
        return await detail(registry, await registry.get(pathway_id, version))
    except UnknownPathway as unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(unknown)) from None


@router.post(
    "",
    response_model=PathwayDetail,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": PathwayDetail, "description": "This exact version was deployed before; nothing changed."},
        409: {"model": Message, "description": "The version is deployed with different content."},
        415: {"model": Message},
        422: {"model": InvalidPathway, "description": "The document has problems; each has its line and column."},
    },
    openapi_extra={"requestBody": {"required": True, "content": {
        media_type: {"schema": {"type": "string", "description": "a pathway document in YAML"}}
        for media_type in ("application/yaml", "application/json")}}},
)
async def deploy_pathway(request: Request, response: Response, registry: RegistryDep, session: SessionDep,
                         access: Manager) -> PathwayDetail:
    """Deploy a new pathway version from its YAML source; a deployed version never changes."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in SOURCE_MEDIA_TYPES:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"send the pathway as YAML with Content-Type application/yaml (or as JSON), "
                            f"not {media_type or 'no Content-Type'}")
    try:
        source = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            {"message": "the pathway is not UTF-8 text", "problems": []}) from None
    try:
        deployment = await registry.deploy(source, POSTED_SOURCE)
    except DocumentInvalid as invalid:
        count = len(invalid.problems)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {
            "message": f"the pathway has {count} problem{'s' if count != 1 else ''}; nothing was deployed",
            "problems": [str(problem) for problem in invalid.problems],
        }) from None
    except VersionConflict as conflict:
        raise HTTPException(status.HTTP_409_CONFLICT, str(conflict)) from None
    await access.record(session, "pathway.deploy", target=f"{deployment.deployed.pathway.id} "
                                                        f"v{deployment.deployed.pathway.version}")
    await session.commit()
    if not deployment.created:
        response.status_code = status.HTTP_200_OK
    return await detail(registry, deployment.deployed)
