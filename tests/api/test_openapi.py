import httpx


async def test_the_api_documents_itself(api: httpx.AsyncClient):
    assert (await api.get("/docs")).status_code == 200
    spec = (await api.get("/openapi.json")).json()
    operations = {operation["operationId"]: (method, path) for path, methods in spec["paths"].items()
                  for method, operation in methods.items()}
    assert operations.items() >= {
        "patients-create_patient": ("post", "/patients"),
        "patients-read_patient": ("get", "/patients/{patient_id}"),
        "pathways-list_pathways": ("get", "/pathways"),
        "pathways-deploy_pathway": ("post", "/pathways"),
        "pathways-read_pathway": ("get", "/pathways/{pathway_id}"),
        "enrollments-create_enrollment": ("post", "/enrollments"),
        "enrollments-read_enrollment": ("get", "/enrollments/{enrollment_id}"),
        "enrollments-cancel_enrollment": ("post", "/enrollments/{enrollment_id}/cancel"),
    }.items()
    every = [operation for methods in spec["paths"].values() for operation in methods.values()]
    assert all(operation.get("summary") and operation.get("description") for operation in every)
    assert set(spec["paths"]["/pathways"]["post"]["requestBody"]["content"]) == {"application/yaml", "application/json"}
    schemes = spec["components"]["securitySchemes"]
    assert {scheme["type"] for scheme in schemes.values()} == {"http", "apiKey"}
