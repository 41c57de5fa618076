"""The pathway language: what a clinical manager may write, as pydantic models.

Every model forbids unknown keys so that a typo is an error, never a silently ignored setting.
Every field carries a description: they become the JSON Schema editors show while authors type.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    WithJsonSchema,
)

from language.basics import (
    At,
    Channel,
    Duration,
    LanguageModel,
    Locale,
    SendWindow,
    Slug,
    ZoneName,
)
from language.messages import Templates

# An SMS past this many segments is refused unless the pathway allows more: a form link alone takes
# three Chinese (UCS-2) segments.
DEFAULT_SMS_MAX_SEGMENTS = 4


class Repeat(LanguageModel):
    """Repeat a step at a fixed interval after its first occurrence."""

    every: Duration = Field(description="time between occurrences; whole days keep the same local clock time")
    times: int = Field(ge=2, le=366, description="how many occurrences in all, the first included", examples=[7])


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# Tells editors that one id may stand alone (`tag: fever`) as well as in a list (`tag: [a, b]`).
_SLUG_SCHEMA = TypeAdapter(Slug).json_schema()
OneOrMany = WithJsonSchema({"anyOf": [_SLUG_SCHEMA, {"type": "array", "items": _SLUG_SCHEMA}]})


WhilePaused = Literal["skip", "send_on_resume"]
_WHILE_PAUSED = ("what becomes of an occurrence that falls due while staff have paused the enrollment (a "
                 "readmission): skip it, or send it when the pause ends (of several occurrences held, only the "
                 "latest goes)")


# The states a touchpoint of each kind can reach that another step may follow.
FOLLOWABLE_STATES: dict[str, tuple[str, ...]] = {
    "message": ("sent",), "questionnaire": ("answered", "expired"), "call": ("reached", "not_reached"),
    "appointment": ("attended", "missed")}


class After(LanguageModel):
    """Due a time after another step's touchpoint reaches a state: once for each of its occurrences that does."""

    step: Slug = Field(description="the id of the step this one follows", examples=["day3-check"])
    sent: Duration | None = Field(default=None, description="this long after a message of that step was sent",
                                  examples=["1d"])
    answered: Duration | None = Field(default=None, description="this long after that questionnaire was answered",
                                      examples=["2d"])
    expired: Duration | None = Field(default=None, description="this long after that questionnaire expired unanswered",
                                     examples=["1d"])
    reached: Duration | None = Field(default=None, description="this long after staff reached the patient on that "
                                                               "call", examples=["7d"])
    not_reached: Duration | None = Field(default=None, description="this long after that call's last attempt "
                                                                   "failed", examples=["1d"])
    attended: Duration | None = Field(default=None, description="this long after the patient came to that "
                                                                "appointment", examples=["7d"])
    missed: Duration | None = Field(default=None, description="this long after that appointment was missed",
                                    examples=["1d"])

    @property
    def states(self) -> dict[str, timedelta]:
        """Each state written with its delay; validation requires exactly one."""
        return {state: getattr(self, state) for states in FOLLOWABLE_STATES.values() for state in states
                if getattr(self, state, None) is not None}

    @property
    def state(self) -> str:
        return next(iter(self.states))

    @property
    def delay(self) -> timedelta:
        return next(iter(self.states.values()))


AFTER_FIELD_DESCRIPTION = ("instead of `at`: due a time after another step's touchpoint reaches a state (sent, "
                           "answered, expired, reached, not_reached, attended, missed), e.g. {step: day3-check, answered: 2d}")


class MessageStep(LanguageModel):
    """Send a message (education, reminder, instructions) to the patient."""

    kind: Literal["message"] = Field(description="what this step does")
    id: Slug = Field(description="unique within the pathway; names the step in timelines and reports")
    replaces: Slug | None = Field(
        default=None, description="the id this step had in an earlier version, when it was renamed: running "
                                  "enrollments that migrate keep its occurrences instead of losing and re-adding them",
        examples=["day7-check"])
    at: At | None = Field(
        default=None, description="when the first occurrence is due; leave out for a message that only rules send",
        examples=["day 1 10:00", "day 0 +2h"])
    after: After | None = Field(default=None, description=AFTER_FIELD_DESCRIPTION,
                                examples=[{"step": "day3-check", "answered": "2d"}])
    repeat: Repeat | None = Field(default=None, description="optional repetition",
                                  examples=[{"every": "1d", "times": 7}])
    spread: Duration | None = Field(
        default=None, description="deliver each occurrence at a fixed point within this window after its time, the "
                                  "same for a patient every time (a cohort enrolled together does not all arrive at "
                                  "one instant); keep the window within send_window", examples=["30m"])
    channel: Channel | None = Field(
        default=None, description="how the message reaches the patient; leave out to follow the pathway's `reach` "
                                  "for the patient's language (email without one)", examples=["email"])
    template: Templates
    # Advice and reminders for days spent in hospital mean nothing afterwards, and would arrive in a heap.
    while_paused: WhilePaused = Field(default="skip", description=_WHILE_PAUSED + "; messages skip by default",
                                      examples=["send_on_resume"])


Priority = Literal["urgent", "high", "routine"]


class Escalate(LanguageModel):
    """Ask a person to look at this patient: the policy says who is told, and who next if nobody answers."""

    reason: str = Field(min_length=1, description="why, in words a nurse understands at a glance",
                        examples=["PHQ-9 score 10 or more"])
    policy: Slug = Field(default="default", description="which of the pathway's escalation_policies to follow",
                         examples=["mood", "crisis"])
    priority: Priority | None = Field(default=None, description="overrides the policy's priority for this rule",
                                      examples=["urgent"])


class Tier(LanguageModel):
    """One rung of an escalation ladder."""

    notify: Slug = Field(description="the team told at this tier (see pathways/site/teams.yaml)", examples=["midwives"])
    ack_within: Duration | None = Field(
        default=None, description="if nobody of that team acknowledges within this time, the next tier is told; "
                                  "leave out on the last tier", examples=["30m"])
    repeat: Duration | None = Field(
        default=None, description="last tier only: tell the team again at this interval until someone acknowledges",
        examples=["15m"])


class EscalationPolicy(LanguageModel):
    """Who is told when a rule escalates, in order, and how long each has to acknowledge."""

    priority: Priority = Field(default="high", description="how fast someone must look", examples=["high"])
    tiers: list[Tier] = Field(min_length=1, description="teams told in turn until someone acknowledges",
                              examples=[[{"notify": "midwives", "ack_within": "30m"}, {"notify": "obstetricians"}]])
    pause_pathway: bool = Field(default=False,
                                description="hold every other step of the pathway until the escalation is resolved",
                                examples=[False])
    resolve_within: Duration | None = Field(
        default=None, description="after an acknowledgement, if the escalation is not resolved within this time it "
                                  "opens again and the ladder starts over from the first tier", examples=["4h"])


class Actions(LanguageModel):
    """What happens when a rule matches (any combination)."""

    tag: Annotated[list[Slug], BeforeValidator(_one_or_many), OneOrMany] = Field(
        default_factory=list, description="labels added to the enrollment, e.g. mood-risk", examples=[["mood-risk"]])
    send: Annotated[list[Slug], BeforeValidator(_one_or_many), OneOrMany] = Field(
        default_factory=list, description="ids of message steps to send now", examples=[["fever-advice"]])
    escalate: Escalate | None = Field(default=None, description="open an escalation",
                                      examples=[{"reason": "PHQ-9 score 10 or more", "priority": "high"}])
    call: Annotated[list[Slug], BeforeValidator(_one_or_many), OneOrMany] = Field(
        default_factory=list, description="ids of call steps to open now (a phone follow-up task)",
        examples=[["no-response-call"]])
    stop: bool = Field(default=False, description="end the pathway for this patient: nothing more is sent",
                       examples=[True])


class Rule(Actions):
    """`when` the expression is true for a response, the actions happen. Every matching rule fires."""

    when: str = Field(min_length=1, description="an expression over score, band, flags, tags and item ids",
                      examples=["score >= 10 or 'self_harm' in flags"])


class QuestionnaireStep(LanguageModel):
    """Ask the patient to fill in an instrument through a signed web link, then act on the answers."""

    kind: Literal["questionnaire"] = Field(description="what this step does")
    id: Slug = Field(description="unique within the pathway; names the step in timelines and reports")
    replaces: Slug | None = Field(
        default=None, description="the id this step had in an earlier version, when it was renamed: running "
                                  "enrollments that migrate keep its occurrences instead of losing and re-adding them",
        examples=["day7-check"])
    instrument: Slug = Field(description="id of an instrument in pathways/instruments/", examples=["phq-9"])
    at: At | None = Field(default=None, description="when the questionnaire opens (the invitation is sent); "
                                                    "leave out for one that opens `after` another step",
                          examples=["day 3 10:00"])
    after: After | None = Field(default=None, description=AFTER_FIELD_DESCRIPTION,
                                examples=[{"step": "day3-check", "answered": "2d"}])
    repeat: Repeat | None = Field(default=None, description="optional repetition",
                                  examples=[{"every": "1d", "times": 7}])
    spread: Duration | None = Field(
        default=None, description="deliver each occurrence at a fixed point within this window after its time, the "
                                  "same for a patient every time (a cohort enrolled together does not all arrive at "
                                  "one instant); keep the window within send_window", examples=["30m"])
    channel: Channel | None = Field(
        default=None, description="how the invitation reaches the patient; leave out to follow the pathway's "
                                  "`reach` for the patient's language (email without one)", examples=["email"])
    template: Templates = Field(description="the invitation per locale; must contain {{ link }}")
    reminder_template: Templates | None = Field(
        default=None, description="reminder text per locale (default: the invitation again); must contain {{ link }}",
        examples=[{"en": {"subject": "Reminder: your check-in", "body": "Still open for you: {{ link }}"}}])
    remind: list[Duration] = Field(default_factory=list, description="after opening, remind if still unanswered",
                                   examples=[["24h", "48h"]])
    expire: Duration = Field(description="after opening, the link stops working and on_expire happens",
                             examples=["72h"])
    on: list[Rule] = Field(default_factory=list, description="rules evaluated on each response, in order",
                           examples=[[{"when": "score >= 10", "tag": "mood-risk",
                                       "escalate": {"reason": "PHQ-9 score 10 or more"}}]])
    on_expire: Actions | None = Field(default=None, description="what happens when nobody answered in time",
                                      examples=[{"tag": "no-response"}])
    # A screening missed during a readmission is a gap in monitoring: by default it opens on resume.
    while_paused: WhilePaused = Field(default="send_on_resume",
                                      description=_WHILE_PAUSED + "; questionnaires open on resume by default",
                                      examples=["skip"])


class CallRetry(LanguageModel):
    """How often staff try again when the patient could not be reached."""

    every: Duration = Field(description="wait this long before the next attempt", examples=["1d"])
    times: int = Field(ge=1, le=10, description="attempts in all, the first included", examples=[3])


class CallStep(LanguageModel):
    """A phone follow-up task (电话随访) for a team: staff record whether they reached the patient."""

    kind: Literal["call"] = Field(description="what this step does")
    id: Slug = Field(description="unique within the pathway; names the step in timelines and reports")
    replaces: Slug | None = Field(
        default=None, description="the id this step had in an earlier version, when it was renamed: running "
                                  "enrollments that migrate keep its occurrences instead of losing and re-adding them",
        examples=["day7-check"])
    at: At | None = Field(
        default=None, description="when the task falls due; leave out for a call that only rules open",
        examples=["day 7 10:00"])
    after: After | None = Field(default=None, description=AFTER_FIELD_DESCRIPTION,
                                examples=[{"step": "day3-check", "answered": "2d"}])
    repeat: Repeat | None = Field(default=None, description="optional repetition",
                                  examples=[{"every": "1d", "times": 7}])
    team: Slug = Field(description="the team whose worklist gets the task", examples=["midwives"])
    instrument: Slug | None = Field(
        default=None, description="the form staff fill in when they reach the patient (an instrument in "
                                  "pathways/instruments/); its item ids are what the call's rules compare",
        examples=["blood-pressure"])
    script: dict[Locale, str] = Field(description="what to ask, per locale of the pathway",
                                      examples=[{"en": "Ask how feeding is going."}])
    retry: CallRetry = Field(default_factory=lambda: CallRetry(every=timedelta(days=1), times=3),
                             description="when the patient is not reached", examples=[{"every": "1d", "times": 3}])
    on: list[Rule] = Field(default_factory=list,
                           description="rules on the values staff recorded on the instrument's form when they "
                                       "reached the patient; without an instrument, on tags and parameters only",
                           examples=[[{"when": "systolic >= bp_systolic_mmhg", "tag": "raised-bp"}]])
    on_not_reached: Actions | None = Field(default=None, description="what happens after the last failed attempt",
                                           examples=[{"tag": "not-reached"}])
    # Nobody phones a patient on the ward; the follow-up is still owed once they are home.
    while_paused: WhilePaused = Field(default="send_on_resume",
                                      description=_WHILE_PAUSED + "; calls open on resume by default",
                                      examples=["skip"])


LINK_PLACEHOLDERS = ("enrollment", "step", "occurrence")


class AppointmentStep(LanguageModel):
    """A visit booked for the patient, in clinic or by video: reminders before it carry the hospital's link;
    then staff (or the video service) record whether the patient came. Nobody recording counts as missed."""

    kind: Literal["appointment"] = Field(description="what this step does")
    id: Slug = Field(description="unique within the pathway; names the step in timelines and reports")
    replaces: Slug | None = Field(
        default=None, description="the id this step had in an earlier version, when it was renamed: running "
                                  "enrollments that migrate keep its occurrences instead of losing and re-adding them",
        examples=["video-visit"])
    mode: Literal["video", "clinic"] = Field(description="by video (the link joins the call) or in clinic (the link "
                                                         "books or confirms)", examples=["video"])
    at: At | None = Field(default=None, description="when the visit is", examples=["day 42 10:00"])
    after: After | None = Field(default=None, description=AFTER_FIELD_DESCRIPTION,
                                examples=[{"step": "day3-check", "answered": "2d"}])
    repeat: Repeat | None = Field(default=None, description="optional repetition",
                                  examples=[{"every": "7d", "times": 4}])
    link: str = Field(pattern=r"^https://\S+$", max_length=500,
                      description="the hospital's booking or video service address; {enrollment}, {step} and "
                                  "{occurrence} are replaced by ids (never a patient's details)",
                      examples=["https://video.example-hospital.cn/join?ref={enrollment}-{step}-{occurrence}"])
    channel: Channel | None = Field(
        default=None, description="how the reminders reach the patient; leave out to follow the pathway's `reach` "
                                  "for the patient's language (email without one)", examples=["wechat"])
    template: Templates = Field(description="the reminder per locale; must contain {{ link }}, and may say when with "
                                            "{{ visit }} (the visit's local date and time)")
    remind: list[Duration] = Field(min_length=1, description="before the visit, remind the patient (with the link)",
                                   examples=[["1d", "1h"]])
    record_within: Duration = Field(
        default=timedelta(days=1), description="after the visit's time, attendance not recorded by then counts as "
                                               "missed (so a visit nobody recorded still gets its follow-up call)",
        examples=["4h"])
    on_missed: Actions | None = Field(default=None, description="what happens when the patient missed the visit",
                                      examples=[{"call": "missed-visit-call"}])
    # A visit that falls in a readmission cannot take place: staff rebook it rather than the patient being
    # reminded of it from a ward, or counted as having missed it.
    while_paused: WhilePaused = Field(default="skip", description=_WHILE_PAUSED + "; visits are skipped by default",
                                      examples=["send_on_resume"])


STEP_KINDS = ("message", "questionnaire", "call", "appointment")


def _step_kind(value: Any) -> str | None:
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


Step = Annotated[
    Union[Annotated[MessageStep, Tag("message")], Annotated[QuestionnaireStep, Tag("questionnaire")],  # noqa: UP007
          Annotated[CallStep, Tag("call")], Annotated[AppointmentStep, Tag("appointment")]],
    Discriminator(_step_kind),
]


ParameterName = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64, examples=["phq9_referral_score"],
               description="lower-case letters, digits and '_', starting with a letter (rules use it as a name)"),
]


class Parameter(LanguageModel):
    """A clinical threshold used by rules, with where it comes from, so reviewers can check it."""

    value: float | int = Field(description="the number rules compare with", examples=[10, 38.0])
    source: str = Field(min_length=1, description="the guideline, paper or local decision behind the number",
                        examples=["Kroenke, Spitzer & Williams, J Gen Intern Med 2001: PHQ-9 >= 10 moderate depression"])


EventFieldType = Literal["number", "boolean", "code", "text"]


def _type_alone(value: Any) -> Any:
    """`test: text` is the field in full with that type: code then sees one shape."""
    return {"type": value} if isinstance(value, str) else value


class EventField(LanguageModel):
    """One value an event carries. Rules read numbers, booleans and codes; text is kept for staff only."""

    type: EventFieldType = Field(
        description="number, boolean, code (one of `codes`) or text (a note for staff: stored, never read by "
                    "rules, so it stays out of the workflow)", examples=["number"])
    min: float | None = Field(default=None, description="number only: the lowest plausible value; lower is refused",
                              examples=[3])
    max: float | None = Field(default=None, description="number only: the highest plausible value; higher is refused",
                              examples=[25])
    codes: list[Slug] = Field(default_factory=list, description="code only: the values the field may take",
                              examples=[["hb", "ferritin"]])
    required: bool = Field(default=True, description="whether every event of this type must carry the field",
                           examples=[False])


class EventDeclaration(LanguageModel):
    """An event a hospital system or staff may send into a running enrollment: a lab result, a clinic reading."""

    fields: dict[ParameterName, Annotated[EventField, BeforeValidator(_type_alone, json_schema_input_type=
                                                                       EventFieldType | EventField)]] = Field(
        default_factory=dict, description="the values the event carries: each a type alone (number, boolean, "
                                          "text) or in full; rules name them",
        examples=[{"hb_g_dl": {"type": "number", "min": 3, "max": 25}, "test": "text"}])


class EventRule(Rule):
    """`when` an event of this type arrives and the expression holds over its fields, the actions happen."""

    event: Slug = Field(description="the declared event (under `events:`) this rule listens to",
                        examples=["lab-result"])
    when: str = Field(min_length=1, description="an expression over the event's fields, parameters and tags",
                      examples=["hb_g_dl < hb_threshold_g_dl"])


class Reach(LanguageModel):
    """How the pathway's messages reach patients by default, and who calls a patient no message reached.

    A patient's own preferred channels (GET/PUT /patients/{id}/preferences) are tried first; then a step's
    `channel`, or else this order for the patient's language; a channel that cannot reach the patient (no
    address or openid, no form of the message for it, refused for good) passes the message to the next."""

    channels: dict[Locale, list[Channel]] = Field(
        default_factory=dict, description="per patient language, the channels to try in order",
        examples=[{"zh-CN": ["wechat", "sms"], "en": ["email"]}])
    call: Slug | None = Field(
        default=None, description="a call step (usually without `at`) opened for staff when no channel reached "
                                  "the patient; without it, the operations team is told", examples=["unreached-call"])


class Pathway(LanguageModel):
    """A care pathway: what happens to an enrolled patient, and when, relative to an anchor date."""

    id: Slug = Field(description="stable identifier; enrollments refer to it")
    version: int = Field(ge=1, description="raise it for every change; running enrollments keep theirs",
                         examples=[1])
    title: str = Field(min_length=1, description="shown to staff", examples=["Post-surgery recovery"])
    anchor: Slug = Field(description="the named date the schedule hangs on",
                         examples=["surgery_date", "delivery_date", "discharge_date"])
    timezone: ZoneName = Field(default="UTC", description="used when the patient has no time zone of their own")
    send_window: SendWindow | None = Field(
        default=None,
        description="local hours when patients may be contacted; a touchpoint outside waits for the window to open",
        examples=["09:00-20:00"],
    )
    locales: list[Locale] = Field(min_length=1, description="languages the pathway speaks; the first is the default",
                                  examples=[["zh-CN", "en"]])
    parameters: dict[ParameterName, Parameter] = Field(
        default_factory=dict, description="named thresholds that rules use, each with its source",
        examples=[{"phq9_referral_score": {"value": 10, "source": "Kroenke 2001: PHQ-9 >= 10 moderate depression"}}])
    escalation_policies: dict[Slug, EscalationPolicy] = Field(
        default_factory=dict,
        description="named ladders that rules escalate to; 'crisis' (if given) takes crisis language and self-harm "
                    "flags instead of the built-in crisis route",
        examples=[{"default": {"tiers": [{"notify": "midwives", "ack_within": "30m"}, {"notify": "obstetricians"}]}}])
    sms_max_segments: int = Field(
        default=DEFAULT_SMS_MAX_SEGMENTS, ge=1, le=10,
        description="an SMS text that would take more segments (counting a form link as 140 characters) is refused",
        examples=[DEFAULT_SMS_MAX_SEGMENTS])
    events: dict[Slug, EventDeclaration] = Field(
        default_factory=dict, description="events the pathway listens to while it runs, with what each carries",
        examples=[{"lab-result": {"fields": {"hb_g_dl": {"type": "number", "min": 3, "max": 25}}}}])
    on_event: list[EventRule] = Field(
        default_factory=list, description="rules evaluated on each event, in order; every matching rule fires",
        examples=[[{"event": "lab-result", "when": "hb_g_dl < hb_threshold_g_dl", "tag": "anaemia",
                    "call": "anaemia-call"}]])
    reach: Reach | None = Field(
        default=None, description="the channels to try in order per patient language, and the call when none "
                                  "reached the patient", examples=[{"channels": {"zh-CN": ["wechat", "sms"]},
                                                                    "call": "unreached-call"}])
    steps: list[Step] = Field(min_length=1, description="what happens, in any order; each has its own timing",
                              examples=[[{"kind": "message", "id": "welcome", "at": "day 1 10:00",
                        "template": {"en": {"subject": "Welcome", "body": "Dear {{ patient.first_name }}, ..."}}}]])

    def step(self, step_id: str) -> MessageStep | QuestionnaireStep | CallStep | AppointmentStep:
        return next(step for step in self.steps if step.id == step_id)


# Every pathway gets this route for crisis language and self-harm flags, even if its author forgot:
# the site's crisis team, told again every 15 minutes until someone acknowledges.
CRISIS_POLICY_NAME = "crisis"
BUILT_IN_CRISIS_POLICY = EscalationPolicy(
    priority="urgent",
    tiers=[Tier(notify="crisis", ack_within=timedelta(minutes=15)),
           Tier(notify="crisis", repeat=timedelta(minutes=15))],
)


def crisis_policy(pathway: Pathway) -> EscalationPolicy:
    return pathway.escalation_policies.get(CRISIS_POLICY_NAME, BUILT_IN_CRISIS_POLICY)
