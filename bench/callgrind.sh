#!/usr/bin/env bash
# Instructions per request under callgrind (issue 14, items 1 and 7): nginx as
# a plain proxy, and modelgate with an API key, a JWT and the built-in iris, in
# front of the same nginx `return 200` upstream. Writes the `instructions`
# section of bench/RESULTS.md and leaves callgrind's files in bench/callgrind/
# (read them with `callgrind_annotate bench/callgrind/modelgate-API-key.callgrind`).
#
#   bench/callgrind.sh
#   BENCH_CALLGRIND_REQUESTS=10000 bench/callgrind.sh
#   BENCH_CALLGRIND_ONLY=built-in bench/callgrind.sh   # only rows whose label contains it
#     (a partial run rewrites the section with those rows only: re-run all before committing it)
exec "$(dirname "$0")/run.sh" instructions
