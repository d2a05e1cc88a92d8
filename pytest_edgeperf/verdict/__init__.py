"""The verdict of a measurement against its baseline: rules, run-to-run noise, the judge and its table."""
