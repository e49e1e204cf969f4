"""Attacks on Shipmate's boundary, each reproduced against the real sandbox, proxy, git and
server, and each asserted to be held (issue 13)."""
