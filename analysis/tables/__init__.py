"""Numbers from a collected sweep: survival summaries with bootstrap intervals, the report's
tables, damage overlap and the most damaged features."""
