"""Versions 2 and 3 of one pathway, for the migration tests: version 3 adds a day-14 check, removes the
day-21 message, renames the two-week note and raises the referral threshold from 10 to 12."""

VERSION_2 = """\
id: recovery-check
version: 2
title: Recovery check
anchor: delivery_date
locales: [en]
parameters:
  referral_score: {value: 10, source: "PHQ-9 >= 10, Kroenke 2001"}
steps:
  - kind: message
    id: welcome
    at: day 1 10:00
    template: {en: {subject: "Welcome", body: "Hello"}}
  - kind: questionnaire
    id: mood
    instrument: phq-9
    at: day 9 10:00
    expire: 72h
    template: {en: {subject: "Mood questionnaire", body: "Please answer: {{ link }}"}}
    on:
      - {when: score >= referral_score, tag: mood-risk}
  - kind: message
    id: week2-note
    at: day 12 10:00
    template: {en: {subject: "Two weeks", body: "Hello"}}
  - kind: message
    id: day21-message
    at: day 21 10:00
    template: {en: {subject: "Three weeks", body: "Hello"}}
  - kind: message
    id: closing
    at: day 28 10:00
    template: {en: {subject: "Goodbye", body: "Hello"}}
"""

VERSION_3 = (VERSION_2.replace("version: 2", "version: 3")
             .replace("{value: 10,", "{value: 12,")
             .replace("    id: week2-note\n", "    id: two-week-note\n    replaces: week2-note\n")
             .replace("""  - kind: message
    id: day21-message
    at: day 21 10:00
    template: {en: {subject: "Three weeks", body: "Hello"}}
""", """  - kind: questionnaire
    id: day14-check
    instrument: phq-9
    at: day 14 10:00
    expire: 48h
    template: {en: {subject: "Day 14 check", body: "Please answer: {{ link }}"}}
    on:
      - {when: score >= referral_score, tag: mood-risk}
"""))
