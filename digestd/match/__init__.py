"""Match every subscriber's rules against a batch of papers at once, through an index of atoms.

`plan` compiles rules to trees and clauses over interned atoms, `index` finds the atoms in a
paper in one pass over its words, `matcher` runs every subscriber's rules against a batch.
"""

from .matcher import Matcher, match_rules

__all__ = ["Matcher", "match_rules"]
