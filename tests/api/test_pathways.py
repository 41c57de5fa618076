import httpx

from services.registry import source_digest

NEW_PATHWAY = """\
id: api-deployed
version: 1
title: Deployed over HTTP
anchor: delivery_date
locales: [en]
steps:
  - kind: message
    id: hello
    at: day 2 09:00
    template:
      en: {subject: "Hello", body: "Dear {{ patient.first_name }}"}
"""


async def deploy(api: httpx.AsyncClient, source: str, content_type: str = "application/yaml") -> httpx.Response:
    return await api.post("/pathways", content=source.encode(), headers={"Content-Type": content_type})


async def test_shipped_pathways_are_listed_but_not_those_in_subfolders(api: httpx.AsyncClient):
    response = await api.get("/pathways")
    assert response.status_code == 200
    listed = {pathway["id"]: pathway for pathway in response.json()}
    assert listed["api-follow-up"] == {"id": "api-follow-up", "version": 1, "title": "API follow-up",
                                       "anchor": "discharge_date", "locales": ["zh-CN", "en"]}
    assert "in-a-subfolder" not in listed


async def test_a_pathway_reads_with_its_source_and_definition(api: httpx.AsyncClient):
    response = await api.get("/pathways/api-follow-up")
    assert response.status_code == 200
    pathway = response.json()
    assert pathway["versions"] == [1]
    assert pathway["sha256"] == source_digest(pathway["source"])
    assert pathway["definition"]["steps"][0]["repeat"] == {"every": "1d", "times": 3}
    assert (await api.get("/pathways/api-follow-up", params={"version": 1})).json() == pathway


async def test_unknown_pathways_and_versions_are_404(api: httpx.AsyncClient):
    assert (await api.get("/pathways/no-such-pathway")).json() == {"detail": "no pathway 'no-such-pathway' is deployed"}
    response = await api.get("/pathways/api-follow-up", params={"version": 9})
    assert response.status_code == 404
    assert response.json() == {"detail": "pathway 'api-follow-up' has no version 9"}


async def test_deploying_a_new_version_then_the_same_again(api: httpx.AsyncClient):
    first = await deploy(api, NEW_PATHWAY)
    assert first.status_code == 201, first.text
    assert first.json()["source"] == NEW_PATHWAY
    again = await deploy(api, NEW_PATHWAY, "application/x-yaml; charset=utf-8")
    assert again.status_code == 200
    assert again.json() == first.json()

    second = await deploy(api, NEW_PATHWAY.replace("version: 1", "version: 2").replace("day 2", "day 3"))
    assert second.status_code == 201
    latest = (await api.get("/pathways/api-deployed")).json()
    assert (latest["version"], latest["versions"]) == (2, [1, 2])
    assert latest["definition"]["steps"][0]["at"] == "day 3 09:00"
    listed = {pathway["id"]: pathway["version"] for pathway in (await api.get("/pathways")).json()}
    assert listed["api-deployed"] == 2


async def test_a_deployed_version_never_changes(api: httpx.AsyncClient):
    original = NEW_PATHWAY.replace("api-deployed", "api-immutable")
    assert (await deploy(api, original)).status_code == 201
    changed = await deploy(api, original.replace("Hello", "Hi there"))
    assert changed.status_code == 409
    assert changed.json() == {"detail": "pathway 'api-immutable' version 1 is already deployed with different "
                                        "content; a deployed version never changes: raise 'version' to deploy the new content"}
    assert (await api.get("/pathways/api-immutable")).json()["source"] == original


async def test_an_invalid_pathway_is_refused_with_every_problem_and_its_place(api: httpx.AsyncClient):
    broken = NEW_PATHWAY.replace("api-deployed", "api-broken").replace("day 2 09:00", "day two").replace(
        "title: Deployed over HTTP", "titel: Deployed over HTTP")
    response = await deploy(api, broken)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["message"] == "the pathway has 3 problems; nothing was deployed"
    # The wording of each problem belongs to the pathway language; the API's part is file:line:col: field.
    assert [problem.split(": ", 2)[:2] for problem in detail["problems"]] == [
        ["<body>:1:1", "title"], ["<body>:3:1", "titel"], ["<body>:9:5", "steps[0].at"]]
    assert "'day two'" in detail["problems"][2]
    assert (await api.get("/pathways/api-broken")).status_code == 404


async def test_broken_yaml_points_at_its_line(api: httpx.AsyncClient):
    response = await deploy(api, "id: x\nsteps: [\n")
    assert response.status_code == 422
    [problem] = response.json()["detail"]["problems"]
    assert problem.startswith("<body>:3:1: not valid YAML")


async def test_only_yaml_or_json_is_accepted(api: httpx.AsyncClient):
    # text/plain and form posts are what a hostile page can make a signed-in browser send.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = await deploy(api, NEW_PATHWAY.replace("api-deployed", "api-cross-site"), content_type)
        assert response.status_code == 415, content_type
        assert "application/yaml" in response.json()["detail"]
    as_json = await api.post("/pathways", json={"id": "api-json"})
    assert as_json.status_code == 422 and as_json.json()["detail"]["problems"]


async def test_a_pathway_may_name_a_team_created_through_the_api(api: httpx.AsyncClient):
    team = await api.post("/teams", json={"id": "wound-clinic", "name": "Wound clinic",
                                          "email": "wound-clinic@hospital.test"})
    assert team.status_code == 201, team.text
    calling = NEW_PATHWAY.replace("api-deployed", "wound-follow-up") + (
        "  - kind: call\n    id: wound-check\n    at: day 3 10:00\n    team: wound-clinic\n"
        "    script: {en: Ask how the wound looks.}\n")

    deployed = await deploy(api, calling)

    assert deployed.status_code == 201, deployed.text
    assert deployed.json()["definition"]["steps"][1]["team"] == "wound-clinic"
    unknown = await deploy(api, calling.replace("wound-follow-up", "nobodys-call").replace("team: wound-clinic",
                                                                                           "team: wound-clinc"))
    assert unknown.status_code == 422
    assert "unknown team 'wound-clinc'; did you mean 'wound-clinic'?" in unknown.text
