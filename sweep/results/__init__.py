"""The results contract between sweep/ and analysis/: file names, feature columns and the typed
records of summary.json, defined once for the writer, the reader and the tests."""
