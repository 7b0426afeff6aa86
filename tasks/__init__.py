"""Puzzle domains behind one small interface (see tasks/base.py).

Receives task-native puzzles (strings, dicts, lists) and hands on numpy token arrays, verifier
results and enumerated solutions. Knows nothing of models, torch or HTTP.
"""
