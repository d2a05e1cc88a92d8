"""The version of the results JSON (``--edgeperf-json``): the file and every result record in it.

Why one constant in its own module: the writer (``Result.to_json``, ``report.files.results_payload``) and the reader
(``report.files.load_results``) must agree, and a bump has to reach both; this module imports nothing, so the
bottom of the package (``result.py``) and the reports can both name it.
"""

#: bump when a field of the results file or of a result record changes meaning or is removed
RESULTS_SCHEMA_VERSION = 1
