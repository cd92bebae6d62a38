#!/usr/bin/env python3
"""Writes a multiple-choice task file (JSONL: query, choices, gold; see datasets/tasks.h) in the
binary layout llama.cpp's `llama-perplexity --multiple-choice -bf FILE` reads, so the same items can
be scored by both (docs/tasks.md). Layout, all little-endian: u32 n_tasks, u32 offset of each task,
then per task: string question, block mc1, block mc2 (empty); string = u32 length + UTF-8 bytes;
block = u32 n, n strings, n i32 labels (1 = correct).

usage: tasks-to-llamacpp-mc.py IN.jsonl OUT.bin [--limit N]"""
import json
import struct
import sys


def string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def task(item: dict) -> bytes:
    choices = item["choices"]
    labels = [1 if i == item["gold"] else 0 for i in range(len(choices))]
    mc1 = struct.pack("<I", len(choices)) + b"".join(string(c) for c in choices)
    mc1 += struct.pack(f"<{len(labels)}i", *labels)
    return string(item["query"]) + mc1 + struct.pack("<I", 0)


def main() -> None:
    args = sys.argv[1:]
    limit = None
    if "--limit" in args:
        i = args.index("--limit")
        limit = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    with open(args[0], encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    items = items[:limit] if limit else items
    blobs = [task(it) for it in items]
    offset = 4 + 4 * len(blobs)
    offsets = []
    for b in blobs:
        offsets.append(offset)
        offset += len(b)
    with open(args[1], "wb") as f:
        f.write(struct.pack("<I", len(blobs)) + struct.pack(f"<{len(offsets)}I", *offsets) + b"".join(blobs))


if __name__ == "__main__":
    main()
