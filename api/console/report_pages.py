"""What the pathways, reports and summary pages share: their policy, their templates and their words."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.security import Access, allow
from services.principals import Role

# Every staff role reads pathways and figures (a clinician their own teams'); hospital systems have no console.
Staff = Annotated[Access, Depends(allow(Role.CLINICAL_MANAGER, Role.ADMIN, Role.AUDITOR, Role.CLINICIAN))]
LOCALES = ("zh-CN", "en")

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")


def locale_of(request: Request) -> str:
    asked = request.query_params.get("lang") or request.headers.get("Accept-Language", "")
    return "zh-CN" if asked.lower().startswith("zh") else "en"


def render(request: Request, access: Access, template: str, context: dict[str, Any],
           status_code: int = 200) -> HTMLResponse:
    locale = locale_of(request)
    return templates.TemplateResponse(request, template, {
        "locale": locale, "t": TEXT[locale], "principal": access.principal, **context}, status_code=status_code)


TEXT: dict[str, dict[str, str]] = {
    "en": {
        "pathways": "Pathways", "reports": "Reports", "version": "Version", "versions": "Versions",
        "deployed": "Deployed", "active_patients": "Patients on it now", "enrollments_ever": "Enrollments, all time",
        "preview": "Preview", "compare": "Compare", "diff": "Differences", "text": "YAML as written",
        "plan": "The plan from the same anchor", "anchor": "Anchor", "older": "Older", "newer": "Newer",
        "show": "Show", "no_pathways": "No pathway is deployed.", "sha": "Content digest",
        "preview_note": "What the plan sends, and when, for an enrollment anchored on this day.",
        "added": "added", "changed": "changed", "removed": "removed",
        # The reports page
        "start": "From", "end": "To (included)", "timezone": "Time zone", "pathway": "Pathway", "team": "Team",
        "all_pathways": "All pathways", "all_teams": "All teams I may see", "period": "Period", "csv": "Download CSV",
        "no_rows": "Nothing in this period.",
        "aggregates": "Counts over many patients: reading them is not a read of patient data, and is not in the "
                      "access log.",
        "table_enrollments": "Enrollments", "table_touchpoints": "Messages",
        "table_response_rates": "Questionnaire response rate per step",
        "table_response_times": "Time to acknowledge and to resolve escalations (minutes)",
        "table_satisfaction": "Satisfaction", "table_cohort": "Scores by days since the anchor",
        "about_enrollments": "Started in the period; completed, cancelled or stopped by a rule in the period.",
        "about_touchpoints": "Messages due in the period; late: sent more than 15 minutes after they were due.",
        "about_response_rates": "Of the questionnaires opened in the period: answered ÷ (answered + expired). "
                                "Those still open, and those closed because the enrollment ended, do not count.",
        "about_response_times": "Escalations opened in the period, by the team and tier that held them; from "
                                "opening. A breach: acknowledged later than the first tier's limit, or resolved "
                                "later after the acknowledgement than the policy allows (still waiting counts).",
        "about_satisfaction": "Likelihood to recommend (0-10): % recommending (9-10) − % not (0-6), from −100 to "
                              "100. % positive: very good or good, of every overall-experience answer "
                              "(“don't know” included).",
        "about_cohort": "Enrollments anchored in the period: mean score on each day after the anchor.",
        "chart_label": "mean score by days since the anchor", "days_since_anchor": "days since the anchor",
        "col_pathway_id": "Pathway", "col_started": "Started", "col_completed": "Completed",
        "col_cancelled": "Cancelled", "col_stopped": "Stopped", "col_channel": "Channel", "col_due": "Due",
        "col_sent": "Sent", "col_failed": "Failed", "col_late": "Late", "col_step_id": "Step",
        "col_instrument_id": "Instrument", "col_opened": "Opened", "col_answered": "Answered",
        "col_expired": "Expired", "col_closed": "Closed early", "col_still_open": "Still open",
        "col_rate": "Response rate %", "col_team": "Team", "col_tier": "Tier", "col_escalations": "Escalations",
        "col_acknowledged": "Acknowledged", "col_acknowledge_p50": "Acknowledge p50",
        "col_acknowledge_p90": "Acknowledge p90", "col_resolved": "Resolved", "col_resolve_p50": "Resolve p50",
        "col_resolve_p90": "Resolve p90", "col_acknowledge_breaches": "Acknowledged late",
        "col_resolve_breaches": "Resolved late", "col_recommend_answers": "Recommend answers",
        "col_promoters": "Would recommend", "col_passives": "Neutral", "col_detractors": "Would not",
        "col_recommend_score": "Likelihood-to-recommend score", "col_experience_answers": "Experience answers",
        "col_positive": "Positive", "col_neutral": "Neither", "col_negative": "Negative",
        "col_percent_positive": "% positive", "col_day": "Day", "col_responses": "Answers",
        "col_mean_score": "Mean score",
        # The stage summary
        "summary": "Stage summary", "patient": "Patient", "hospital_number": "Record number", "status": "Status",
        "followed": "Followed", "ongoing": "ongoing",
        "summary_counts": "{sent} messages sent · {answered} of {asked} questionnaires answered · {flagged} "
                          "escalations · {done} calls done",
        "print_note": "Print it with your browser (Ctrl+P); choose “Save as PDF” for a PDF.",
        "sent": "Sent", "answered": "Answered", "flagged": "Flagged", "done": "Done", "purpose": "Purpose",
        "due_at": "Due", "sent_at": "Sent", "opens_at": "Opened", "answered_at": "Answered", "score": "Score",
        "band": "Band", "flags": "Flags", "by_phone": "by phone", "reason": "Reason", "priority": "Priority",
        "opened_at": "Opened", "acknowledged": "Acknowledged", "resolved": "Resolved", "outcome_note": "Outcome",
        "outcome": "Outcome", "notes": "Notes", "recorded": "Recorded", "attempt": "attempt {number}",
        "purpose_scheduled": "message", "purpose_invitation": "invitation", "purpose_reminder": "reminder",
        "times_in": "Times in {zone}", "printed_by": "Printed by {name}, {at}",
        "status_active": "active", "status_completed": "completed", "status_cancelled": "cancelled",
        "status_stopped": "stopped", "status_sent": "sent", "status_failed": "failed", "status_answered": "answered",
        "status_expired": "expired", "status_closed": "closed", "status_open": "open", "status_done": "done",
        "status_acknowledged": "acknowledged", "status_resolved": "resolved",
        "priority_urgent": "urgent", "priority_high": "high", "priority_routine": "routine",
        "outcome_reached": "reached", "outcome_not_reached": "not reached",
    },
    "zh-CN": {
        "pathways": "随访路径", "reports": "统计报表", "version": "版本", "versions": "版本列表",
        "deployed": "发布时间", "active_patients": "当前在管患者", "enrollments_ever": "累计入组",
        "preview": "预览", "compare": "比较", "diff": "差异", "text": "YAML 原文",
        "plan": "同一基准日下的计划", "anchor": "基准日", "older": "旧版本", "newer": "新版本",
        "show": "显示", "no_pathways": "尚未发布任何随访路径。", "sha": "内容摘要",
        "preview_note": "以该日为基准日入组时，计划发送的内容和时间。",
        "added": "新增", "changed": "修改", "removed": "删除",
        "start": "开始日期", "end": "结束日期（含）", "timezone": "时区", "pathway": "随访路径", "team": "团队",
        "all_pathways": "全部路径", "all_teams": "我可查看的全部团队", "period": "统计期间", "csv": "下载 CSV",
        "no_rows": "该期间无数据。",
        "aggregates": "以上均为多名患者的汇总数字：查看报表不属于查阅患者数据，不记入访问日志。",
        "table_enrollments": "入组情况", "table_touchpoints": "消息发送",
        "table_response_rates": "各步骤问卷应答率", "table_response_times": "预警确认与处置用时（分钟）",
        "table_satisfaction": "满意度", "table_cohort": "入组后各天的评分",
        "about_enrollments": "期间内开始的入组；期间内完成、取消或被规则终止的入组。",
        "about_touchpoints": "期间内应发送的消息；延迟：晚于应发时间 15 分钟以上发出。",
        "about_response_rates": "期间内开放的问卷：应答率 = 已回答 ÷（已回答 + 已过期）。仍开放的及因随访结束而关闭的不计入。",
        "about_response_times": "期间内发起的预警，按最终处理的团队和层级统计，从发起时起算。超时：确认晚于第一层级的时限，"
                                "或确认后处置超过策略规定的时限（仍在等待的也计入）。",
        "about_satisfaction": "推荐意愿（0-10 分）：推荐（9-10 分）占比 − 不推荐（0-6 分）占比，范围 −100 至 100。"
                              "好评率：“非常好”或“好”占全部总体体验回答（含“不知道”）的比例。",
        "about_cohort": "期间内基准日的入组：基准日后每天的平均评分。",
        "chart_label": "基准日后各天的平均评分", "days_since_anchor": "基准日后天数",
        "col_pathway_id": "随访路径", "col_started": "开始", "col_completed": "完成", "col_cancelled": "取消",
        "col_stopped": "终止", "col_channel": "渠道", "col_due": "应发", "col_sent": "已发", "col_failed": "失败",
        "col_late": "延迟", "col_step_id": "步骤", "col_instrument_id": "量表", "col_opened": "开放",
        "col_answered": "已回答", "col_expired": "已过期", "col_closed": "提前关闭", "col_still_open": "仍开放",
        "col_rate": "应答率 %", "col_team": "团队", "col_tier": "层级", "col_escalations": "预警数",
        "col_acknowledged": "已确认", "col_acknowledge_p50": "确认用时 P50", "col_acknowledge_p90": "确认用时 P90",
        "col_resolved": "已处置", "col_resolve_p50": "处置用时 P50", "col_resolve_p90": "处置用时 P90",
        "col_acknowledge_breaches": "确认超时", "col_resolve_breaches": "处置超时",
        "col_recommend_answers": "推荐题回答数", "col_promoters": "推荐", "col_passives": "中立",
        "col_detractors": "不推荐", "col_recommend_score": "推荐意愿得分", "col_experience_answers": "体验题回答数",
        "col_positive": "好评", "col_neutral": "一般", "col_negative": "差评", "col_percent_positive": "好评率 %",
        "col_day": "天", "col_responses": "回答数", "col_mean_score": "平均分",
        "summary": "随访小结", "patient": "患者", "hospital_number": "病案号", "status": "状态",
        "followed": "随访期间", "ongoing": "进行中",
        "summary_counts": "已发送消息 {sent} 条 · 问卷已答 {answered}/{asked} 份 · 预警 {flagged} 次 · 已完成电话随访 {done} 次",
        "print_note": "请用浏览器打印（Ctrl+P）；选择“另存为 PDF”即可得到 PDF 文件。",
        "sent": "已发送", "answered": "已回答", "flagged": "预警", "done": "已处理", "purpose": "用途",
        "due_at": "应发时间", "sent_at": "发送时间", "opens_at": "开放时间", "answered_at": "回答时间", "score": "得分",
        "band": "分级", "flags": "标记", "by_phone": "电话录入", "reason": "原因", "priority": "优先级",
        "opened_at": "发起时间", "acknowledged": "确认", "resolved": "处置", "outcome_note": "处置结果",
        "outcome": "结果", "notes": "备注", "recorded": "记录人", "attempt": "第 {number} 次",
        "purpose_scheduled": "消息", "purpose_invitation": "问卷邀请", "purpose_reminder": "提醒",
        "times_in": "时间均为 {zone} 时间", "printed_by": "打印人：{name}，{at}",
        "status_active": "进行中", "status_completed": "已完成", "status_cancelled": "已取消", "status_stopped": "已终止",
        "status_sent": "已发送", "status_failed": "发送失败", "status_answered": "已回答", "status_expired": "已过期",
        "status_closed": "已关闭", "status_open": "开放中", "status_done": "已完成", "status_acknowledged": "已确认",
        "status_resolved": "已处置", "priority_urgent": "紧急", "priority_high": "高", "priority_routine": "常规",
        "outcome_reached": "已联系上", "outcome_not_reached": "未联系上",
    },
}
