"""The work orders of the TOROS Manager manual (release 0.1a1, sections 1.4.1 and 1.4.2),
written exactly as the manual prints them."""

MANUAL_OBSERVATION = {
  "ID": "1",
  "WOType": "Observation",
  "Priority": 1.3,
  "Datetime": "2019-03-05T14:34:54.234",
  "User": "Main Module",
  "Telescope Name": "CTMO",
  "RA": 23.1,
  "Dec": 13.2,
  "Filter": "I",
  "Exposure Time": 30.0,
  "Number of Exposures": 1,
  "Type of job": "Research",
  "Type of object": "Galaxy",
  "Calibration Frames": "Yes",
  "Output": "Analysis",
}

MANUAL_DOME = {
  "ID": "1",
  "WOType": "Dome",
  "Priority": 2,
  "Datetime": "2019-03-05T14:34:54.234",
  "User": "John Doe",
  "Blink01": True,
}
