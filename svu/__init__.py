"""The `svu` command line: `svu data prepare`, `svu classify`, `svu evaluate`, `svu transcribe`, `svu --version`."""
