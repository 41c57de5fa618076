"""Questionnaire instruments: the model, scoring, checks and licensed local text."""
