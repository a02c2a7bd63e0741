"""Relevance: text vectors of a day's papers, subscriber profiles from seeds and feedback, scores.

No SQL and no I/O here but reading seed files (seedfile.py): the store hands in plain data.
"""
