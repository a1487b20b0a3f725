"""Code the tests share: importing course files, fake checkpoints and hubs, local servers.

Tests import it as `from support.NAME import ...` (pytest puts tests/ on the path).
"""
