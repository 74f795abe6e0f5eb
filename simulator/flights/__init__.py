"""The flight-ops simulator: an airline-ops database replaying 2013 on its own clock
(replay.py, tables.py, nycflights.py) and an hourly weather feed over HTTP (weather_feed.py),
all plain Python; plus what wires them to the platform in Dagster: the replay weather feed
resource (resources.py). Its `advance_clock` job is built in simulator/jobs.py."""
