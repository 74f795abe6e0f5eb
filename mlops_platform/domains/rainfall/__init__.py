"""The rainfall domain: NOAA daily weather at Bellevue, Nebraska (declaration, spec, features)."""
