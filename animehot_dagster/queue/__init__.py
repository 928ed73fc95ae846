"""Redis queues between the orchestrator and the crawler nodes (SPEC §5, §6).

keys (names), reliable (task and result queues), janitor, schedule (the ZSET), dispatcher (due
IPs → tasks), processor (results → ingest), deadletter, stats, commands (the CLI).
"""
