"""The bad-input corpus (:mod:`.corpus`) and the front doors it goes through (:mod:`.doors`).

Used by tests/test_bad_inputs.py and scripts/bad_input_report.py (which writes the table of
docs/reliability.md); nothing here is committed output: the corpus is made into a folder on demand.
"""
