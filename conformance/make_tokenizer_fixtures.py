#!/usr/bin/env python3
"""Generate the BPE tokenizer fixtures used by runtime/tok/bpe_test.go.

Nothing is downloaded: the script trains two tiny BPE tokenizers with the
Hugging Face `tokenizers` library on a few KB of text written below, derives
variants from them by editing their JSON, and records what Hugging Face makes
of a list of test strings.

Written under runtime/tok/testdata/bpe/ (or --out):

  bytelevel/tokenizer.json         GPT-2 style: ByteLevel pre-tokenizer (regex
                                   split, add_prefix_space false) and decoder,
                                   <|endoftext|> and <mask> (lstrip) added
  bytelevel_prefix/tokenizer.json  the same with add_prefix_space true
  llama/tokenizer.json             Llama style: normalizer Sequence(Prepend "▁",
                                   Replace " "→"▁"), no pre-tokenizer,
                                   byte_fallback with <0x00>…<0xFF> in the
                                   vocabulary, decoder Sequence(Replace,
                                   ByteFallback, Fuse, Strip), <unk> <s> </s>
                                   and a normalized added token "<tag>"
  metaspace/tokenizer.json         the same vocabulary with a Metaspace
                                   pre-tokenizer (prepend_scheme "first",
                                   split true) and Metaspace decoder
  cases.json                       {"<name>": [{"text", "ids", "decoded"}]}:
                                   ids from encode(text, add_special_tokens=False),
                                   decoded from decode(ids, skip_special_tokens=False)

Run (any venv with `tokenizers`, e.g. the conformance one):

    python conformance/make_tokenizer_fixtures.py
"""

import argparse
import json
import os

import tokenizers
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)

CORPUS = """\
The quick brown fox jumps over the lazy dog. The dog didn't care; it's lazy.
I'll be there at 10:30, and we'll see what they've done. She'd said "hello" twice!
Numbers: 0 1 2 3 4 5 6 7 8 9, 42, 3.14159, 2024-06-01, 1,000,000 and 007.
Punctuation!!! Really?? (parentheses) [brackets] {braces} <angles> #hash @at $5 %50 ^_^ &amp; *star*
    Indented line with four spaces.
\tTabbed line, then    several   spaces   between   words.
Trailing spaces here   
Multiple

blank

lines.
Café, naïve, résumé, façade, jalapeño, Über, straße, Ångström, élève, déjà vu.
Les élèves étudient à l'école; où est la bibliothèque? Ça va très bien.
Der Bär läuft über die Brücke. Schön, größer, Fußgänger.
Emoji time 😀 🎉 👍🏽 ❤️ 🚀 — dash – en-dash … ellipsis “quotes” ‘single’.
日本語のテキスト。中文文本。한국어 텍스트.
Привет, как дела? Ελληνικά γράμματα. שלום עולם. مرحبا بالعالم.
def main():
    for i in range(10):
        print(f"value {i}: {i * 2}")
    return None
if (x >= 10 && y != 0) { z = x / y; } // comment
The model learns to predict the next token. Training uses low-rank adapters.
A LoRA adapter adds two small matrices A and B to a frozen weight W.
They're here, we're there, you're everywhere; he's gone and it's done.
Don't, won't, can't, shouldn't, wouldn't, couldn't: contractions everywhere.
Mixed CASE words LIKE THIS and thIS And This. ALL'S WELL THAT ENDS WELL.
email: someone@example.com, url: https://example.org/path?q=1&r=2#frag
"""

CASES = [
    "",
    "Hello world",
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces",
    "trailing spaces   ",
    " ",
    "   ",
    "a  b   c    d",
    "line one\nline two\n",
    "\n\nstarts with newlines",
    "tab\tseparated\tvalues",
    " \t mixed \n\t whitespace \n ",
    "1234567890",
    "3.14159 and 2,718",
    "don't I'll we've they're she'd it's I'm",
    "DON'T I'LL 'S 'x''s",
    "Café naïve résumé",
    "Ångström straße Über",
    "日本語のテキスト",
    "中文文本和한국어",
    "emoji 😀🎉 👍🏽 ❤️",
    "🚀",
    "<s>",
    "</s>",
    "<s>Hello</s>",
    "Hello <s> world </s>",
    "<unk>",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "end of doc <|endoftext|>\n<|endoftext|>",
    "fill the <mask> here",
    "  <mask>",
    "use <tag> and<tag>x",
    "<tag>",
    "<0x41>",
    "def f(x):\n    return x * 2\n",
    "if (a >= b && c != d) { e = f / g; }",
    "https://example.org/path?q=1&r=2#frag",
    "Привет, мир! Ελληνικά",
    "non\u00a0breaking\u3000ideographic\u2003em",
    "a\r\nb",
    "x" * 40,
    "!!!???...",
    "The model learns to predict the next token.",
]


def train_bytelevel():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.splitlines(keepends=True), trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    return tok


def train_llama_base():
    # Trained with a Metaspace pre-tokenizer so that pieces start with "▁" as
    # in SentencePiece vocabularies; the saved variants set their own
    # normalizer / pre-tokenizer.
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        min_frequency=2,
        limit_alphabet=70,
        special_tokens=["<unk>", "<s>", "</s>"],
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.splitlines(keepends=True), trainer)
    return tok


def llama_json(base):
    """Rebuild the trained model Llama-style: <unk> <s> </s>, then <0x00>…<0xFF>
    as ordinary vocabulary entries, then the trained pieces."""
    j = json.loads(base.to_str())
    old = j["model"]["vocab"]
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {}
    for s in specials:
        vocab[s] = len(vocab)
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in sorted(old.items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    j["model"]["vocab"] = vocab
    j["model"]["byte_fallback"] = True
    j["model"]["fuse_unk"] = True
    j["model"]["unk_token"] = "<unk>"
    for t in j["added_tokens"]:
        t["id"] = vocab[t["content"]]
    j["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ],
    }
    j["pre_tokenizer"] = None
    j["decoder"] = {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    }
    tok = Tokenizer.from_str(json.dumps(j))
    # A non-special added token, matched on the normalized text.
    tok.add_tokens([AddedToken("<tag>", normalized=True, special=False)])
    return tok


def metaspace_from(llama):
    j = json.loads(llama.to_str())
    j["normalizer"] = None
    j["pre_tokenizer"] = {
        "type": "Metaspace",
        "replacement": "▁",
        "prepend_scheme": "first",
        "split": True,
    }
    j["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    j["added_tokens"] = [t for t in j["added_tokens"] if t["content"] != "<tag>"]
    return Tokenizer.from_str(json.dumps(j))


def prefix_from(bytelevel):
    j = json.loads(bytelevel.to_str())
    j["pre_tokenizer"]["add_prefix_space"] = True
    return Tokenizer.from_str(json.dumps(j))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "runtime", "tok", "testdata", "bpe"))
    args = ap.parse_args()

    bl = train_bytelevel()
    llama = llama_json(train_llama_base())
    toks = {
        "bytelevel": bl,
        "bytelevel_prefix": prefix_from(bl),
        "llama": llama,
        "metaspace": metaspace_from(llama),
    }

    cases = {"tokenizers_version": tokenizers.__version__}
    for name, tok in toks.items():
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tokenizer.json")
        tok.save(path, pretty=False)
        # Reload from disk so the cases describe exactly the saved file.
        tok = Tokenizer.from_file(path)
        rows = []
        for text in CASES:
            ids = tok.encode(text, add_special_tokens=False).ids
            rows.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
        cases[name] = rows
        rt = sum(r["decoded"] == r["text"] for r in rows)
        print(f"{name}: vocab {tok.get_vocab_size()}, {rt}/{len(rows)} cases round-trip, {os.path.getsize(path)} bytes")

    with open(os.path.join(args.out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
