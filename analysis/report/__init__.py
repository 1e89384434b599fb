"""The report: report.html and report.md with every table, figure and feature card."""
