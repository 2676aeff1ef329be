"""The CLI's exit codes, in one place (the parser and the runner both return them)."""

EXIT_OK = 0  # every file ok, or already done
EXIT_RUN_FAILED = 1  # the run itself failed (a shard on every attempt, the canary, the engine)
EXIT_USAGE = 2  # a user mistake, reported as one line naming the parameter
EXIT_FILES_FAILED = 3  # the run finished, but some files failed (each has a `failed` row with its reason)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C'd command; what was done is kept
