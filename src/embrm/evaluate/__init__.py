"""Steps 6 and 8 and the report: ranking metrics, ensemble evaluation, validation of the
four variants, plots."""
