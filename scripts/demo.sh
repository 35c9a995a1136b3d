#!/usr/bin/env bash
# The main job, offline: start a DiningCode replica, crawl all 25 districts into PostgreSQL, print a
# summary and the score against the replica's ground truth. Extra arguments go to `stage5 demo`.
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/requirements.txt"
exec python -m stage5 demo "$@"
