"""deepdenoise benchmark suites: each measures against a baseline in the same run."""
