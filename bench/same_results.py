#!/usr/bin/env python3
# Whether two results directories hold the same numbers: every row of metrics, layer_errors and
# tensor_errors compared exactly (as SQLite stores them: doubles bit for bit). Exit code 0 when equal.
# Usage: bench/same_results.py DIR_A DIR_B
import sqlite3
import sys


def rows(d, table):
    c = sqlite3.connect(d + "/results.sqlite")
    return sorted(tuple(r) for r in c.execute(f"SELECT * FROM {table}"))


ok = True
for table in ["metrics", "layer_errors", "tensor_errors"]:
    a, b = rows(sys.argv[1], table), rows(sys.argv[2], table)
    ok &= a == b
    print(table, len(a), "rows", "bitwise equal" if a == b else "DIFFER")
sys.exit(0 if ok else 1)
