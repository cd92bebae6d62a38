#!/usr/bin/env python3
# Developer tool, not run by the tests: makes hf_bpe.json and hf_golden.json with Hugging Face
# `tokenizers` (PyPI, offline). The C++ tests compare ByteBpeTokenizer against these ids.
# Usage: python3 -m venv /tmp/v && /tmp/v/bin/pip install tokenizers==0.23.3
#        /tmp/v/bin/python tests/data/tokenizer/make_golden.py ../shared/data tests/data/tokenizer
import json
import struct
import sys

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

data_dir, out_dir = sys.argv[1], sys.argv[2]
FILES = ["tinyshakespeare.txt", "tinystories-valid-head.txt", "wikitext-2-raw-test.txt",
         "wikitext-2-raw-valid.txt"]
texts = {f: open(f"{data_dir}/{f}", encoding="utf-8").read() for f in FILES}

# 1. A small byte-level BPE trained by tokenizers itself (GPT-2 pre-tokenizer).
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=["<|endoftext|>", "<|begin_of_text|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tok.train_from_iterator([texts["tinyshakespeare.txt"][:300000], texts["wikitext-2-raw-valid.txt"][:300000]],
                        trainer=trainer)
tok.save(f"{out_dir}/hf_bpe.json")
base = json.load(open(f"{out_dir}/hf_bpe.json"))

L3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
Q2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
BL = lambda rx: {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": rx}
SPLIT = lambda p: {"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": False}
BOS = {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}}],
       "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}}],
       "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [1],
                                                "tokens": ["<|begin_of_text|>"]}}}
variants = {
    "gpt2": {"pre_tokenizer": BL(True), "ignore_merges": False, "post_processor": None},
    "llama3": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [SPLIT(L3), BL(False)]},
               "ignore_merges": True, "post_processor": BOS},
    "qwen2": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [SPLIT(Q2), BL(False)]},
              "ignore_merges": False, "post_processor": None},
    "smollm": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, BL(True)]},
               "ignore_merges": False, "post_processor": None},
}

samples = [
    "Hello world! It's a test: don't, won't, they'll, we've, I'd, I'M, YOU'RE.",
    "Numbers 1 12 123 1234 12345 3.14159 1,000,000 and 2024-01-01.",
    "  leading and trailing spaces   \n\n\nmany newlines\r\nCRLF\ttab\t\tend  ",
    "caf\u00e9 na\u00efve \u00dcber \u65e5\u672c\u8a9e \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \U0001F600\U0001F680 emoji",
    "non-breaking\u00a0space, thin\u2009space, ideographic\u3000space, nel\u0085line, vt\x0bff\x0cend",
    "fractions \u00bd \u00b2 superscript, arabic-indic \u0663\u0664, roman \u2167",
    "special <|endoftext|> token<|endoftext|>inside and <|begin_of_text|> too",
    "punctuation!!! ??? ... --- \"quotes\" 'single' (parens) [brackets] {braces} $100 #tag @user",
]
for f in FILES:
    t = texts[f]
    samples.append(t[5000:7000])
    samples.append(t[len(t) // 2: len(t) // 2 + 2000])


def ids_digest(ids):  # FNV-1a 64 over the ids as int32 little-endian bytes, in hex
    h = 0xCBF29CE484222325
    for b in b"".join(struct.pack("<i", i) for i in ids):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


golden = {"tokenizers_version": tokenizers.__version__, "samples": samples, "variants": {}}
for name, v in variants.items():
    j = json.loads(json.dumps(base))
    j["pre_tokenizer"] = v["pre_tokenizer"]
    j["model"]["ignore_merges"] = v["ignore_merges"]
    j["post_processor"] = v["post_processor"]
    t = Tokenizer.from_str(json.dumps(j))
    entry = {"pre_tokenizer": v["pre_tokenizer"], "ignore_merges": v["ignore_merges"],
             "post_processor": v["post_processor"], "ids": [], "ids_with_special_head": [], "files": {}}
    for s in samples:  # ids of golden["samples"][k]; with add_special_tokens only the first 4 ids
        entry["ids"].append(t.encode(s, add_special_tokens=False).ids)
        entry["ids_with_special_head"].append(t.encode(s, add_special_tokens=True).ids[:4])
    for f in FILES:
        ids = t.encode(texts[f], add_special_tokens=False).ids
        entry["files"][f] = {"count": len(ids), "fnv1a64_i32le": ids_digest(ids)}
    golden["variants"][name] = entry
json.dump(golden, open(f"{out_dir}/hf_golden.json", "w"), ensure_ascii=True, indent=None)
print("wrote", out_dir, len(samples), "samples")
