"""qfeat sweep: everything one job does — load, compress, measure, record."""
