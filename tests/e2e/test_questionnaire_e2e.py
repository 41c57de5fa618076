"""A questionnaire through every real process: the invitation's link, the form, the answers, the rules."""

import base64
import json
import re
import uuid
from datetime import UTC, datetime

import pytest
from itsdangerous import URLSafeSerializer

pytestmark = pytest.mark.e2e

MOOD = """\
id: e2e-mood
version: 1
title: Mood follow-up
anchor: start
locales: [en, zh-CN]
parameters:
  referral_score: {value: 10, source: "PHQ-9 >= 10, Kroenke 2001"}
escalation_policies:
  default:
    tiers: [{notify: midwives, ack_within: 1h}, {notify: obstetrics-on-call}]
steps:
  - kind: questionnaire
    id: phq9
    instrument: phq-9
    at: 1s
    expire: {expire}
    template:
      en: {subject: "How have you been feeling?", body: "Please answer here: {{ link }}"}
      zh-CN: {subject: "心情问卷", body: "请点击填写：{{ link }}"}
    on:
      - when: score >= referral_score
        tag: mood-risk
        escalate: {reason: "PHQ-9 10 or more", priority: high}
"""
FREQUENCY = ["not_at_all", "several_days", "more_than_half_the_days", "nearly_every_day"]
LINK = re.compile(r"http://[^\s]+/f/[A-Za-z0-9_.\-]+")


def phq9(*scores: int) -> dict[str, str]:
    return {f"q{number}": FREQUENCY[value] for number, value in enumerate(scores, start=1)}


async def _enroll_with_link(stack, pathway_id: str, **patient_fields) -> tuple[dict, str, str]:
    patient = await stack.add_patient(**patient_fields)
    response = await stack.http.post("/enrollments", json={
        "patient_id": patient["id"], "pathway_id": pathway_id, "anchor": datetime.now(UTC).isoformat()},
        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 201, response.text
    [invitation] = await stack.until_mail(patient["email"], 1)
    return patient, response.json()["id"], LINK.search(invitation.body).group(0)


def _path(link: str) -> str:
    return link[link.index("/f/"):]


async def _phq9_entry(stack, enrollment_id: str) -> dict:
    enrollment = await stack.enrollment(enrollment_id)
    return next(e for e in enrollment["timeline"]["entries"] if e["step_id"] == "phq9")


@pytest.fixture(scope="module")
async def deployed(stack):
    await stack.deploy(MOOD.replace("{expire}", "10m"))
    await stack.deploy(MOOD.replace("e2e-mood", "e2e-mood-short").replace("{expire}", "4s"))


async def test_a_patient_answers_through_the_emailed_link_and_the_rules_act(stack, deployed):
    patient, enrollment_id, link = await _enroll_with_link(stack, "e2e-mood")

    form = await stack.http.get(_path(link))
    assert form.status_code == 200
    assert '<html lang="en">' in form.text and 'method="post"' in form.text
    assert "Little interest or pleasure in doing things" in form.text
    assert form.text.count('type="radio" name="q1"') == 4 and "<script" not in form.text
    assert "Developed by Drs. Robert L. Spitzer" in form.text

    # Two questions left out: the form comes back saying which, with what was given still chosen.
    partial = {key: value for key, value in phq9(2, 2, 2, 2, 2, 2, 2, 1, 0).items() if key not in ("q4", "q7")}
    again = await stack.http.post(_path(link), data=partial)
    assert again.status_code == 422
    assert again.text.count("Please answer this question.") == 2 * 2  # in the summary and at each question
    assert 'name="q1" value="more_than_half_the_days" checked' in again.text
    assert (await _phq9_entry(stack, enrollment_id))["status"] == "open"

    thanks = await stack.http.post(_path(link), data=phq9(2, 2, 2, 2, 2, 2, 2, 1, 0))  # total 15
    assert thanks.status_code == 200 and "Thank you" in thanks.text

    entry = await _phq9_entry(stack, enrollment_id)
    assert entry["status"] == "answered"
    assert (entry["response"]["score"], entry["response"]["band"]) == (15, "moderately_severe")
    assert entry["outcome"]["tags"] == ["mood-risk"] and entry["outcome"]["escalations"] == ["PHQ-9 10 or more"]
    enrollment = await stack.enrollment(enrollment_id)
    assert enrollment["timeline"]["tags"] == ["mood-risk"]
    assert [event["kind"] for event in enrollment["timeline"]["events"]][-1] == "escalation"

    second = await stack.http.post(_path(link), data=phq9(0, 0, 0, 0, 0, 0, 0, 0, 0))
    assert second.status_code == 410 and "already answered" in second.text
    assert (await _phq9_entry(stack, enrollment_id))["response"]["score"] == 15

    # Whoever held the link used the patient's data: the access log says when, and from where.
    log = (await stack.http.get(f"/patients/{patient['id']}/access-log")).json()
    by_link = [(line["action"], line["actor_kind"], line["target"]) for line in log if line["actor_kind"] == "form_link"]
    assert by_link == [("form.submit", "form_link", "phq9/1")] * 2 + [("form.open", "form_link", "phq9/1")]


async def test_the_form_speaks_the_patients_language(stack, deployed):
    _, _, link = await _enroll_with_link(stack, "e2e-mood", locale="zh-CN", timezone="Asia/Shanghai")

    form = await stack.http.get(_path(link))

    assert form.status_code == 200 and '<html lang="zh-CN">' in form.text
    assert "做事时提不起劲或没有兴趣" in form.text and "提交我的回答" in form.text


async def test_tampered_foreign_and_expired_links_are_refused_and_change_nothing(stack, deployed):
    _, victim_enrollment, victim_link = await _enroll_with_link(stack, "e2e-mood")
    _, _, own_link = await _enroll_with_link(stack, "e2e-mood")
    token = _path(own_link).removeprefix("/f/")

    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    payload, signature = token.rsplit(".", 1)
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims[0] = victim_enrollment  # the same signature over another patient's enrollment
    foreign = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
    forged = URLSafeSerializer("not-the-server-key", salt="carepath.questionnaire-form.v1").dumps(
        [victim_enrollment, "phq9", 1, 4102444800])
    for bad in (tampered, f"{foreign}.{signature}", forged):
        assert (await stack.http.get(f"/f/{bad}")).status_code == 403
        assert (await stack.http.post(f"/f/{bad}", data=phq9(3, 3, 3, 3, 3, 3, 3, 3, 3))).status_code == 403
    assert (await _phq9_entry(stack, victim_enrollment))["status"] == "open"
    assert (await stack.http.get(_path(victim_link))).status_code == 200

    _, short_enrollment, short_link = await _enroll_with_link(stack, "e2e-mood-short")
    entry = await stack.until_status(short_enrollment, "completed", timeout=30)
    assert next(e for e in entry["timeline"]["entries"] if e["step_id"] == "phq9")["status"] == "expired"
    late_get = await stack.http.get(_path(short_link))
    late_post = await stack.http.post(_path(short_link), data=phq9(3, 3, 3, 3, 3, 3, 3, 3, 3))
    assert late_get.status_code == 410 and late_post.status_code == 410 and "has passed" in late_post.text
    assert (await _phq9_entry(stack, short_enrollment))["response"] is None


async def test_staff_enter_answers_taken_by_phone(stack, deployed):
    _, enrollment_id, _ = await _enroll_with_link(stack, "e2e-mood")
    url = f"/enrollments/{enrollment_id}/questionnaires/phq9/1/responses"

    invalid = await stack.http.post(url, json={"answers": {"q1": "sometimes"}})
    assert invalid.status_code == 422 and "q1" in invalid.json()["detail"]["errors"]
    assert "q2" in invalid.json()["detail"]["errors"]

    accepted = await stack.http.post(url, json={"answers": phq9(1, 1, 1, 1, 1, 1, 1, 1, 0)})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["outcome"]["tags"] == []  # total 8: below the referral score
    assert (await _phq9_entry(stack, enrollment_id))["response"]["score"] == 8

    again = await stack.http.post(url, json={"answers": phq9(1, 1, 1, 1, 1, 1, 1, 1, 0)})
    assert again.status_code == 410
