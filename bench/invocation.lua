-- One single-row MLflow scoring request (dataframe_records), as a typical client sends.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"dataframe_records": [{"carrier": "UA", "origin": "EWR", "dest": "IAH", "manufacturer": "BOEING", "distance": 1400, "sched_dep_hour": 5, "sched_arr_hour": 8, "day_of_week": 1, "plane_age": 14, "seats": 149, "engines": 2, "temp": 39.0, "dewp": 26.1, "humid": 59.4, "wind_dir": 270, "wind_speed": 10.4, "wind_gust": null, "precip": 0, "pressure": 1012.0, "visib": 10, "origin_late_1d": 0.18, "origin_late_7d": 0.21, "carrier_late_7d": 0.2, "dest_late_7d": 0.22}]}'
