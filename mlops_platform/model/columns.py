"""The feature table's fixed column names: the contract between features and every later stage.

A domain's feature table has, in this order: the domain's entity key columns
(`Domain.entity_key`), `EVENT_DATE` (the day the row belongs to: its partition), `EVENT_AT`
(the prediction point, a UTC-naive timestamp; rows are sorted by it), the spec's feature
columns, and `LABEL` (NaN until the outcome arrives). Scores add `SCORE` and `MODEL_VERSION`.
Stages after features read these names and the domain's key, never a domain's own columns.
"""

EVENT_DATE = "event_date"
EVENT_AT = "event_at"
LABEL = "label"
SCORE = "score"
MODEL_VERSION = "model_version"
