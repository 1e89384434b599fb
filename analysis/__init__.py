"""qfeat analysis: from sweep result files to tables, figures and reports; never re-runs models."""
