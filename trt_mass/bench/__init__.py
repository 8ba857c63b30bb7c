"""`trtmass bench`: the timed run (run), the machine it ran on (machine), the report (report) and the
paper's eager way of running the same weights as the baseline (baseline; needs torch).
"""
