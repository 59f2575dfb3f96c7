"""The `svu` command line: `svu data prepare ...`, `svu transcribe ...`."""
