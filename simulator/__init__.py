"""The simulator: source systems that replay real data sets on a clock, and the replays that
drive the platform through them. Not production code: the platform never imports it."""
