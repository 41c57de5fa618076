"""A cancelled enrollment's questionnaire link, through every real process: it says the questionnaire
has closed, in the patient's language, and takes no answers from the patient or from staff."""

import pytest

from tests.stack import until
from tests.e2e.test_questionnaire_e2e import MOOD, _enroll_with_link, _path, phq9

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def deployed(stack):
    await stack.deploy(MOOD.replace("e2e-mood", "e2e-mood-ending").replace("{expire}", "10m"))


async def _cancelled(stack, enrollment_id: str) -> None:
    """Cancel, and wait until the worker has recorded the end (`ended_at`), not only the workflow."""
    response = await stack.http.post(f"/enrollments/{enrollment_id}/cancel", json={"reason": "readmitted"})
    assert response.status_code == 200, response.text

    async def recorded() -> bool:
        return (await stack.enrollment(enrollment_id))["ended_at"] is not None

    await until(recorded, f"the end of enrollment {enrollment_id} to be recorded", stack.api, timeout=10)


async def test_a_cancelled_enrollments_link_answers_410_with_whom_to_contact(stack, deployed):
    _, enrollment_id, link = await _enroll_with_link(stack, "e2e-mood-ending")
    assert (await stack.http.get(_path(link))).status_code == 200

    await _cancelled(stack, enrollment_id)
    form = await stack.http.get(_path(link))
    submitted = await stack.http.post(_path(link), data=phq9(3, 3, 3, 3, 3, 3, 3, 3, 3))
    by_staff = await stack.http.post(f"/enrollments/{enrollment_id}/questionnaires/phq9/1/responses",
                                     json={"answers": phq9(0, 0, 0, 0, 0, 0, 0, 0, 0)})

    for page in (form, submitted):
        assert page.status_code == 410 and '<html lang="en">' in page.text
        assert "This questionnaire has closed" in page.text and "contact your care team" in page.text
        assert "readmitted" not in page.text and 'method="post"' not in page.text
    assert by_staff.status_code == 410 and "the enrollment ended (readmitted)" in by_staff.json()["detail"]
    entries = (await stack.enrollment(enrollment_id))["timeline"]["entries"]
    assert next(e for e in entries if e["step_id"] == "phq9")["response"] is None


async def test_the_closed_page_speaks_the_patients_language(stack, deployed):
    _, enrollment_id, link = await _enroll_with_link(stack, "e2e-mood-ending", locale="zh-CN",
                                                     timezone="Asia/Shanghai")
    await _cancelled(stack, enrollment_id)

    form = await stack.http.get(_path(link))

    assert form.status_code == 410 and '<html lang="zh-CN">' in form.text
    assert "这份问卷已关闭" in form.text and "请直接联系您的医护团队" in form.text
