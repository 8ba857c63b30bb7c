"""Evaluation: FROC analysis (froc), `trtmass eval` over a labelled set (run), and `trtmass compare` of a
variant against its reference (compare)."""
