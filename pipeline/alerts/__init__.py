"""Alert rules: their conditions (conditions.py), the windowed series they are evaluated
over (series.py), the state machine that turns evaluations into transitions
(evaluate.py) and the in-memory book of every rule (rulebook.py). Rules and numbers:
docs/alerts.md."""
