"""The GRAM load generator (docs/http-api.md section 5); run it as `python -m gram_client.loadgen`.

Receives a server URL and a bounded plan (widths, load fractions, step length, overall budget);
hands on JSON + CSV + PNG results. Modules: puzzles (seeded inputs), runner (closed and open
loops), stats (percentiles, goodput), report (metadata and files), __main__ (the phases).
"""
