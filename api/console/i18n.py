"""The console's words in each language it speaks (services.accounts.STAFF_LOCALES).

One table, so a word missing in one language is a test failure rather than an English word on a
Chinese page (tests/browser/test_console_frame.py checks every key has every language).
"""

from __future__ import annotations

from collections.abc import Callable

from api.console.report_words import REPORT_WORDS
from services.accounts import STAFF_LOCALES

WORDS: dict[str, dict[str, str]] = {
    "product": {"en": "carepath console", "zh-CN": "carepath 随访工作台"},
    "skip": {"en": "Skip to content", "zh-CN": "跳到正文"},
    "worklist": {"en": "Worklist", "zh-CN": "待办"},
    "patients": {"en": "Patients", "zh-CN": "患者"},
    "sign_in": {"en": "Sign in", "zh-CN": "登录"},
    "sign_out": {"en": "Sign out", "zh-CN": "退出"},
    "email": {"en": "Email", "zh-CN": "邮箱"},
    "password": {"en": "Password", "zh-CN": "密码"},
    "language": {"en": "Language", "zh-CN": "语言"},
    "change": {"en": "Change", "zh-CN": "切换"},
    "signed_in_as": {"en": "Signed in as", "zh-CN": "当前用户"},
    "teams": {"en": "Teams", "zh-CN": "团队"},
    "print": {"en": "Print", "zh-CN": "打印"},
    "error": {"en": "Something is wrong", "zh-CN": "出错了"},
    "refused": {"en": "Not open to you", "zh-CN": "您无权查看"},
    "refused_detail": {"en": "None of your teams follows this patient, so the console does not show it. "
                                 "The attempt has been recorded.",
                       "zh-CN": "您所在的团队未参与此患者的随访，因此无法查看。本次访问已记录。"},
    "not_found": {"en": "Not found", "zh-CN": "未找到"},
    "back": {"en": "Back", "zh-CN": "返回"},
    # worklist
    "nothing_to_do": {"en": "Nothing is waiting for your teams.", "zh-CN": "您的团队暂无待办。"},
    "priority": {"en": "Priority", "zh-CN": "优先级"},
    "due": {"en": "Due", "zh-CN": "到期"},
    "kind": {"en": "Kind", "zh-CN": "类型"},
    "status": {"en": "Status", "zh-CN": "状态"},
    "team": {"en": "Team", "zh-CN": "团队"},
    "reason": {"en": "Reason", "zh-CN": "原因"},
    "overdue": {"en": "overdue", "zh-CN": "已逾期"},
    "escalation": {"en": "Escalation", "zh-CN": "预警"},
    "call": {"en": "Call", "zh-CN": "电话随访"},
    "urgent": {"en": "urgent", "zh-CN": "紧急"},
    "high": {"en": "high", "zh-CN": "高"},
    "routine": {"en": "routine", "zh-CN": "常规"},
    "open": {"en": "open", "zh-CN": "待处理"},
    "acknowledged": {"en": "acknowledged", "zh-CN": "已确认"},
    "resolved": {"en": "resolved", "zh-CN": "已解决"},
    "done": {"en": "done", "zh-CN": "已完成"},
    "acknowledge": {"en": "Acknowledge", "zh-CN": "确认接手"},
    "resolve": {"en": "Resolve", "zh-CN": "解决"},
    "outcome_note": {"en": "What was done", "zh-CN": "处理结果"},
    "reassign": {"en": "Hand to team", "zh-CN": "转交团队"},
    "audit": {"en": "Audit", "zh-CN": "处理记录"},
    "when": {"en": "When", "zh-CN": "时间"},
    "action": {"en": "Action", "zh-CN": "操作"},
    "who": {"en": "Who", "zh-CN": "人员"},
    "detail": {"en": "Detail", "zh-CN": "详情"},
    "open_item": {"en": "Open", "zh-CN": "打开"},
    "script": {"en": "Script", "zh-CN": "话术"},
    "call_outcome": {"en": "Outcome of the call", "zh-CN": "随访结果"},
    "reached": {"en": "Reached the patient", "zh-CN": "已联系上"},
    "not_reached": {"en": "Could not reach the patient", "zh-CN": "未联系上"},
    "measured_values": {"en": "Measured values", "zh-CN": "测量值"},
    "notes": {"en": "Notes", "zh-CN": "备注"},
    "record": {"en": "Record", "zh-CN": "保存"},
    "rules_fired": {"en": "What the pathway did", "zh-CN": "路径规则执行结果"},
    "enrollment": {"en": "Enrollment", "zh-CN": "随访计划"},
    "updated_live": {"en": "Updated every few seconds.", "zh-CN": "每隔几秒自动刷新。"},
    # patients and enrollments
    "search": {"en": "Search", "zh-CN": "搜索"},
    "search_hint": {"en": "Name, record number or phone", "zh-CN": "姓名、病历号或电话"},
    "no_patients": {"en": "No patient of your teams matches.", "zh-CN": "未找到您团队随访的匹配患者。"},
    "name": {"en": "Name", "zh-CN": "姓名"},
    "record_number": {"en": "Record number", "zh-CN": "病历号"},
    "phone": {"en": "Phone", "zh-CN": "电话"},
    "enrollments": {"en": "Enrollments", "zh-CN": "随访计划"},
    "pathway": {"en": "Pathway", "zh-CN": "随访路径"},
    "anchor": {"en": "Anchor date", "zh-CN": "基准日期"},
    "enroll": {"en": "Enroll", "zh-CN": "加入随访"},
    "timezone": {"en": "Time zone", "zh-CN": "时区"},
    "cancel_enrollment": {"en": "Cancel the enrollment", "zh-CN": "终止随访"},
    "pause_enrollment": {"en": "Pause (readmitted)", "zh-CN": "暂停随访（再入院）"},
    "pause_reason": {"en": "Why", "zh-CN": "暂停原因"},
    "paused_since": {"en": "paused since", "zh-CN": "暂停自"},
    "resume_enrollment": {"en": "Resume", "zh-CN": "恢复随访"},
    "cancel_reason": {"en": "Why", "zh-CN": "终止原因"},
    "timeline": {"en": "Timeline", "zh-CN": "时间线"},
    "step": {"en": "Step", "zh-CN": "步骤"},
    "delivery": {"en": "Channel and delivery", "zh-CN": "渠道与送达"},
    "score": {"en": "Score", "zh-CN": "得分"},
    "band": {"en": "Band", "zh-CN": "分级"},
    "events": {"en": "Rules that fired", "zh-CN": "触发的规则"},
    "escalations": {"en": "Escalations", "zh-CN": "预警"},
    "charts": {"en": "Scores and values over time", "zh-CN": "评分与测量值变化"},
    "threshold": {"en": "threshold", "zh-CN": "阈值"},
    "no_timeline": {"en": "The workflow did not answer; the timeline shows again once it does.",
                    "zh-CN": "流程暂未响应，稍后将显示时间线。"},
    "enter_answers": {"en": "Enter answers taken by phone", "zh-CN": "录入电话问卷答案"},
    "answers_for": {"en": "Answers for", "zh-CN": "问卷"},
    "submit": {"en": "Submit", "zh-CN": "提交"},
    "accepted": {"en": "Recorded.", "zh-CN": "已保存。"},
}

# The pathways, reports and stage-summary pages' words, kept beside those pages; never one key twice.
assert not WORDS.keys() & REPORT_WORDS.keys(), f"words defined twice: {sorted(WORDS.keys() & REPORT_WORDS.keys())}"
WORDS.update(REPORT_WORDS)


def translator(locale: str) -> Callable[[str], str]:
    """`t("word")` in `locale`; an unknown word is a programming error, shown as its key in brackets."""
    def t(key: str) -> str:
        entry = WORDS.get(key)
        return entry[locale] if entry else f"[{key}]"
    return t


def best_locale(accept_language: str | None) -> str:
    """Before sign-in: the browser's first language the console speaks, else the default."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip()
        for locale in STAFF_LOCALES:
            if tag.lower() == locale.lower() or tag.lower().split("-")[0] == locale.lower().split("-")[0]:
                return locale
    return STAFF_LOCALES[0]
