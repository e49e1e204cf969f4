"""`shipmate demo`: the whole loop against the GitHub and model stand-ins, in one command.

Only this room imports `standins/` (a source checkout's test doubles, not shipped in the
wheel); `command.py` imports the rest lazily, after checking the stand-ins are importable."""
