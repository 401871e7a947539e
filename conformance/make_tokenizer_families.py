#!/usr/bin/env python3
"""Generate the tokenizer-family fixtures used by runtime/tok/family_test.go.

Nothing is downloaded. The script trains small BPE tokenizers with the
Hugging Face `tokenizers` library (BpeTrainer) on text written below, one per
family of real tokenizers, saves each with a tokenizer_config.json, and
records what `tokenizers` (and `transformers`) make of a varied test corpus. It also
records pre-tokenizer and normalizer outputs for configurations the trained
families do not use.

Written under runtime/tok/testdata/families/ (or --out):

  gpt2/     ByteLevel pre-tokenizer (GPT-2 regex), ByteLevel decoder
  llama3/   Split(Llama 3 regex) + ByteLevel(use_regex=false), ignore_merges,
            TemplateProcessing "<|begin_of_text|> $A"
  qwen2/    NFC + Split(Qwen2 regex) + ByteLevel(use_regex=false)
  llama2/   normalizer Prepend("▁") + Replace(" "→"▁"), byte_fallback,
            fuse_unk, TemplateProcessing "<s> $A", add_bos_token in the config
  gemma/    Metaspace(prepend_scheme first, split false), byte_fallback,
            add_bos_token and add_eos_token in the config
  each dir: tokenizer.json, tokenizer_config.json
  cases.json  (the corpus below, all of it joined, and random strings)
              {"families": {name: [{"text", "ids", "ids_special",
                "decoded", "decoded_skip"}]},
               "pretok": [{"config", "cases": [{"text", "pieces"}]}],
               "normalizers": [{"config", "cases": [{"text", "normalized"}]}],
               "nfc": [{"text", "normalized"}]}

  ids:          encode(text, add_special_tokens=False)
  ids_special:  encode(text, add_special_tokens=True) (the post_processor)
  decoded:      decode(ids, skip_special_tokens=False)
  decoded_skip: decode(ids_special, skip_special_tokens=True)
  where `transformers` is installed, the script also checks that
  AutoTokenizer(dir)(text)["input_ids"] equals ids_special, and says so in
  "transformers_checked"

Run (any venv with `tokenizers`; with `transformers` too for its check):

    python conformance/make_tokenizer_families.py
"""

import argparse
import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

# Training text: varied enough that every family learns merges for words,
# numbers, code and several scripts.
TRAIN = """\
The quick brown fox jumps over the lazy dog. The dog didn't care; it's lazy and it'll stay so.
I'll be there at 10:30, and we'll see what they've done. She'd said "hello" twice! You're right, I'm sure.
Numbers: 0 1 2 3 4 5 6 7 8 9, 42, 3.14159, 2024-06-01, 1,000,000, 1234567 and 007. Call 555-0123 now.
Punctuation!!! Really?? (parentheses) [brackets] {braces} <angles> #hash @at $5 %50 ^_^ &amp; *star* ~tilde~
    Indented line with four spaces.
\tTabbed line, then    several   spaces   between   words.
Trailing spaces here   
Multiple

blank

lines.
Café, naïve, résumé, façade, jalapeño, Über, straße, Ångström, élève, déjà vu, São Paulo, Zürich.
Les élèves étudient à l'école; où est la bibliothèque? Ça va très bien, merci beaucoup.
Der Bär läuft über die Brücke. Schön, größer, Fußgänger, Mädchen, Öffnungszeiten.
Emoji time 😀 🎉 👍🏽 ❤️ 🚀 👨‍👩‍👧‍👦 🏳️‍🌈 — dash – en-dash … ellipsis “quotes” ‘single’ «guillemets».
日本語のテキストです。東京は大きな都市です。中文文本。我们正在学习自然语言处理。한국어 텍스트입니다.
Привет, как дела? Всё хорошо. Ελληνικά γράμματα. שלום עולם. مرحبا بالعالم، كيف حالك؟ नमस्ते दुनिया।
def main():
    for i in range(10):
        print(f"value {i}: {i * 2}")
    return None

class Model(nn.Module):
    def forward(self, x):
        return self.proj(x) + x  # residual
if (x >= 10 && y != 0) { z = x / y; } // comment
for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }
The model learns to predict the next token. Training uses low-rank adapters on a frozen base.
A LoRA adapter adds two small matrices A and B to a frozen weight W, scaled by alpha over rank.
They're here, we're there, you're everywhere; he's gone and it's done. Y'all'd've liked it.
Don't, won't, can't, shouldn't, wouldn't, couldn't: contractions everywhere. I'll've gone.
Mixed CASE words LIKE THIS and thIS And This. ALL'S WELL THAT ENDS WELL. IT'S DONE.
email: someone@example.com, url: https://example.org/path?q=1&r=2#frag
JSON: {"name": "lorac", "version": 2, "tags": ["lora", "compiler"], "ok": true}
"""

# The test corpus: one case per line, plus a few multi-line ones.
CORPUS = [
    "",
    " ",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé façade jalapeño",
    "Ångström straße Über Zürich São Paulo",
    "e\u0301 vs é: combining acute accent",  # not NFC
    "Å vs \u212b (angstrom sign) and \u1e9b\u0323",
    "日本語のテキストです。",
    "中文文本和한국어 텍스트",
    "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם",
    "नमस्ते दुनिया",
    "emoji 😀🎉 👍🏽 ❤️ 🚀",
    "family 👨‍👩‍👧‍👦 and flag 🏳️‍🌈 and 🇫🇷",
    "1234567",
    "digits 1 12 123 1234 12345 123456 1234567 12345678",
    "3.14159 and 2,718 and ٣٤٥ and ²³",
    "a  b   c    d",
    "  leading spaces",
    "trailing spaces   ",
    "   ",
    "\t\ttabs\tand\ttabs\t",
    "line one\nline two\n",
    "\n\nstarts with newlines",
    "windows\r\nline\r\nendings",
    " \t mixed \n\t whitespace \n ",
    "x \n\n y",
    "non\u00a0breaking\u3000ideographic\u2003em\u2028sep",
    "I'll've don't we've they're she'd it's I'm",
    "DON'T I'LL 'S 'x''s Y'ALL'D'VE",
    "it\u2019s curly",
    "def f(x):\n    return x * 2\n",
    "class A:\n\tdef g(self):\n\t\tpass\n",
    "if (a >= b && c != d) { e = f / g; }",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "https://example.org/path?q=1&r=2#frag",
    "!!!???... ---- ____ ****",
    "Привет, мир! Ελληνικά",
    "x" * 60,
    "<|begin_of_text|>Hello<|eot_id|>",
    "<|begin_of_text|> Hello <|eot_id|> ",
    "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
    "text<|endoftext|>more text <|endoftext|>",
    "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
    "<s>Hello</s> and <s> spaced </s>",
    "<unk> <0x41>",
    "almost <|im_start but not <|eot_id>",
    "<|im_start|><|im_start|>",
    "Le café coûte 3,50 € ; l'addition, s'il vous plaît.",
    "JSON: {\"name\": \"lorac\", \"version\": 2}",
    "the cat sat on the mat; concatenate cat's cat_ cat1 (cat)",
    "cat² ²cat cat\u0301 cat_ _cat catⅧ cat١ x cat\u200d cat· cat- \u200dcat",
    "fill <mask> here, a<mask>b,  <mask>  x",
]

# Random strings over pieces that stress the hand-written regex matchers:
# contractions in all cases (and U+017F LONG S, which folds to s), marks,
# numbers of every kind, Unicode spaces, CR/LF runs, joiners, emoji.
ALPHABET = ["a", "Z", "é", "e\u0301", "\u0301", "ǅ", "ʰ", "中", "ß", "İ", "1", "٣", "²", "Ⅻ", " ", "  ", "\t", "\n", "\r",
            "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085", "'", "'s", "'S", "'ll", "'LL", "'Re", "'\u017f", "'t", "!", "?",
            ".", "_", "/", "😀", "\u200d", "\ufe0f", "<", "|", ">", "-", "<|im_end|>", "<|eot_id|>", "<s>", "cat", "<mask>"]


def random_texts(n, seed=11):
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 14))) for _ in range(n)]


LLAMA3_PAT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_PAT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
GPT2_PAT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
O200K_PAT = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"\s*[\r\n]+",
    r"\s+(?!\S)",
    r"\s+",
])
# Regexes that end in \s+(?!\S)|\s+ but are otherwise Go-compatible, in
# the style of Mistral's Tekken and DeepSeek V3.
TEKKEN_PAT = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
              r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}|"
              r" ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
DEEPSEEK_SEQ = [
    {"type": "Split", "pattern": {"Regex": r"\p{N}{1,3}"}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"Regex": "[一-龥\u3040-ゟ゠-ヿ]+"}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
]

VOCAB = 1200


def lines():
    return TRAIN.splitlines(keepends=True)


def train_bytelevel(pre, normalizer=None, specials=()):
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(specials),
        show_progress=False,
    )
    tok.train_from_iterator(lines(), trainer)
    return tok


def gpt2():
    tok = train_bytelevel(pre_tokenizers.ByteLevel(add_prefix_space=False), specials=["<|endoftext|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
           "unk_token": "<|endoftext|>", "add_prefix_space": False, "model_max_length": 1024}
    return tok, cfg


def split_bytelevel(pat):
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(pat), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


def llama3():
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok = train_bytelevel(split_bytelevel(LLAMA3_PAT), specials=specials)
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    bos = j["model"]["vocab"]["<|begin_of_text|>"]
    j["post_processor"] = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos], "tokens": ["<|begin_of_text|>"]}},
            },
        ],
    }
    tok = Tokenizer.from_str(json.dumps(j))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
           "clean_up_tokenization_spaces": True, "model_max_length": 131072}
    return tok, cfg


def qwen2():
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = train_bytelevel(split_bytelevel(QWEN2_PAT), normalizer=normalizers.NFC(), specials=specials)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
           "pad_token": "<|endoftext|>", "unk_token": None, "add_prefix_space": False,
           "clean_up_tokenization_spaces": False, "model_max_length": 32768}
    return tok, cfg


def train_sp(specials):
    # Trained with a Metaspace pre-tokenizer so that pieces start with "▁" as
    # in SentencePiece vocabularies; the families set their own normalizer
    # and pre-tokenizer.
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 256, min_frequency=1, limit_alphabet=150,
                                  special_tokens=list(specials), show_progress=False)
    tok.train_from_iterator(lines(), trainer)
    j = json.loads(tok.to_str())
    old = j["model"]["vocab"]
    vocab = {}
    for s in specials:
        vocab[s] = len(vocab)
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for p, _ in sorted(old.items(), key=lambda kv: kv[1]):
        if p not in vocab:
            vocab[p] = len(vocab)
    j["model"]["vocab"] = vocab
    for t in j["added_tokens"]:
        t["id"] = vocab[t["content"]]
    return j


def template(bos, bos_id):
    return {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
    }


def llama2():
    j = train_sp(["<unk>", "<s>", "</s>"])
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
    ]}
    j["pre_tokenizer"] = None
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ]}
    j["post_processor"] = template("<s>", j["model"]["vocab"]["<s>"])
    tok = Tokenizer.from_str(json.dumps(j))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": True, "add_eos_token": False,
           "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False,
                         "rstrip": False, "single_word": False},
           "eos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": False, "normalized": False,
                         "rstrip": False, "single_word": False},
           "unk_token": "<unk>", "legacy": False, "clean_up_tokenization_spaces": False}
    return tok, cfg


def gemma():
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    j = train_sp(specials)
    j["normalizer"] = None
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
        {"type": "ByteFallback"}, {"type": "Fuse"},
    ]}
    j["post_processor"] = template("<bos>", j["model"]["vocab"]["<bos>"])
    tok = Tokenizer.from_str(json.dumps(j))
    tok.add_special_tokens([AddedToken("<start_of_turn>", special=True, normalized=False),
                            AddedToken("<end_of_turn>", special=True, normalized=False)])
    # A non-special added token with lstrip/rstrip, and a single_word one.
    tok.add_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, normalized=False, special=False),
                    AddedToken("cat", single_word=True, normalized=False, special=False)])
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": True, "add_eos_token": False,
           "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
           "clean_up_tokenization_spaces": False}
    return tok, cfg


FAMILIES = {"gpt2": gpt2, "llama3": llama3, "qwen2": qwen2, "llama2": llama2, "gemma": gemma}

# Pre-tokenizer configurations checked piece by piece.
PRETOK = [
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
    {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
    {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True},
    {"type": "Metaspace", "replacement": "_", "prepend_scheme": "first", "split": False},
    {"type": "Split", "pattern": {"Regex": LLAMA3_PAT}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"Regex": QWEN2_PAT}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"Regex": GPT2_PAT}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"Regex": O200K_PAT}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"Regex": LLAMA3_PAT}, "behavior": "Removed", "invert": True},
    {"type": "Split", "pattern": {"Regex": TEKKEN_PAT}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"Regex": r"a*|\s+(?!\S)|\s+"}, "behavior": "Contiguous", "invert": False},
    {"type": "Sequence", "pretokenizers": DEEPSEEK_SEQ},
    {"type": "Split", "pattern": {"Regex": r"\s+"}, "behavior": "Removed", "invert": False},
    {"type": "Split", "pattern": {"Regex": r"\d+"}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"Regex": r"\w+"}, "behavior": "Removed", "invert": True},
    {"type": "Split", "pattern": {"Regex": r"[\p{P}\p{S}]"}, "behavior": "MergedWithPrevious", "invert": False},
    {"type": "Split", "pattern": {"Regex": r" ?[a-z]+"}, "behavior": "MergedWithNext", "invert": False},
    {"type": "Split", "pattern": {"Regex": r"[aeiou]"}, "behavior": "Contiguous", "invert": False},
    {"type": "Split", "pattern": {"Regex": r"[aeiou]"}, "behavior": "Contiguous", "invert": True},
    {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
    {"type": "Split", "pattern": {"String": "\n"}, "behavior": "Removed", "invert": False},
    {"type": "Digits", "individual_digits": True},
    {"type": "Digits", "individual_digits": False},
    {"type": "Punctuation", "behavior": "Isolated"},
    {"type": "Punctuation", "behavior": "MergedWithNext"},
    {"type": "Whitespace"},
    {"type": "WhitespaceSplit"},
    {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"},
        {"type": "Digits", "individual_digits": True},
        {"type": "Punctuation", "behavior": "Contiguous"},
    ]},
    {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_PAT}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": False},
    ]},
]

NORMALIZERS = [
    {"type": "NFC"},
    {"type": "Lowercase"},
    {"type": "Strip", "strip_left": True, "strip_right": True},
    {"type": "Strip", "strip_left": False, "strip_right": True},
    {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                         {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]},
    {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
    {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": "_"},
    {"type": "Replace", "pattern": {"Regex": r"[\p{P}\d]"}, "content": "$0"},
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "runtime", "tok", "testdata", "families"))
    args = ap.parse_args()

    out = {"tokenizers_version": tokenizers.__version__, "families": {}, "pretok": [], "normalizers": []}
    texts = CORPUS + ["\n".join(CORPUS)] + random_texts(250)
    for name, make in FAMILIES.items():
        tok, cfg = make()
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tokenizer.json")
        tok.save(path, pretty=False)
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False, indent=1)
            f.write("\n")
        tok = Tokenizer.from_file(path)  # the cases describe the saved file
        try:
            from transformers import AutoTokenizer
            hf = AutoTokenizer.from_pretrained(d)
        except ImportError:
            hf = None
        rows = []
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False).ids
            ids_sp = tok.encode(text, add_special_tokens=True).ids
            row = {
                "text": text,
                "ids": ids,
                "ids_special": ids_sp,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip": tok.decode(ids_sp, skip_special_tokens=True),
            }
            if hf is not None and hf(text)["input_ids"] != ids_sp:
                raise SystemExit(f"{name}: transformers and tokenizers disagree on {text!r}")
            rows.append(row)
        out["families"][name] = rows
        out.setdefault("transformers_checked", {})[name] = hf is not None
        rt = sum(r["decoded"] == r["text"] for r in rows)
        print(f"{name}: vocab {tok.get_vocab_size()}, {rt}/{len(rows)} round-trip, {os.path.getsize(path)} bytes")

    for cfg in PRETOK:
        t = Tokenizer(models.BPE())
        t.pre_tokenizer = Tokenizer.from_str(json.dumps({
            "version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": cfg,
        })).pre_tokenizer
        # The random strings only for the regex splits.
        regex = cfg["type"] == "ByteLevel" or "Regex" in cfg.get("pattern", {})
        cases = [{"text": x, "pieces": [p for p, _ in t.pre_tokenizer.pre_tokenize_str(x)]}
                 for x in (texts if regex else texts[:len(CORPUS) + 1])]
        out["pretok"].append({"config": cfg, "cases": cases})
    for cfg in NORMALIZERS:
        n = Tokenizer.from_str(json.dumps({
            "version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}, "normalizer": cfg,
        })).normalizer
        out["normalizers"].append({"config": cfg, "cases": [{"text": x, "normalized": n.normalize_str(x)}
                                                            for x in texts[:len(CORPUS) + 1]]})

    # NFC over every character with a canonical decomposition: as it is, in
    # NFD form, and with its marks given in reverse order, as tokenizers'
    # NFC normalizer makes them.
    nfc = Tokenizer.from_str(json.dumps({
        "version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}, "normalizer": {"type": "NFC"},
    })).normalizer
    chars = [chr(c) for c in range(sys.maxunicode + 1)
             if not 0xD800 <= c <= 0xDFFF and unicodedata.decomposition(chr(c))[:1] not in ("", "<")]
    chars += [chr(c) for c in range(0xAC00, 0xD7A4, 37)]
    stress = [" ".join(chars), " ".join(unicodedata.normalize("NFD", c) for c in chars),
              " ".join(c[0] + c[1:][::-1] for c in (unicodedata.normalize("NFD", c) for c in chars))]
    out["nfc"] = [{"text": x, "normalized": nfc.normalize_str(x)} for x in stress]

    with open(os.path.join(args.out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("cases.json", os.path.getsize(os.path.join(args.out, "cases.json")), "bytes")


if __name__ == "__main__":
    main()
