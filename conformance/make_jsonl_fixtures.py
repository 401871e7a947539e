#!/usr/bin/env python3
"""Reference losses of JSONL instruction data, from transformers + PEFT.

lorac trains on JSONL records with the prompt (or everything but the
assistant turns) masked out of the loss. This script computes the same
masked loss independently, with the conformance GPT-2 (testdata/gpt2: its
base weights and PEFT adapter) and a tiny tokenizer trained here, and writes
under conformance/testdata/jsonl/:

  tokenizer.json           a byte-level BPE (vocab 64, the model's), trained
                           with the `tokenizers` library on the records'
                           text; <|endoftext|>, <|im_start|>, <|im_end|>
                           are special added tokens
  tokenizer_config.json    bos/eos "<|endoftext|>", add_bos_token false, and
                           a ChatML chat_template with {% generation %}
                           around each assistant reply and its end of turn
  text.jsonl               {"text"} records (one longer than a row)
  prompt.jsonl             {"prompt", "completion"} records
  chat.jsonl               {"messages"} records
  expected.json            per file: the loss with the adapter and without
                           it, the number of trained tokens, and each
                           example's input ids and trained-token mask

How the masks are made here, without lorac's method (which tokenizes the
pieces of an example one by one):

  text               every token trained, EOS appended
  prompt/completion  prompt + completion tokenized as one string; a token is
                     trained when its character offset is at or past the
                     prompt's end (a token straddling it is an error), and
                     the appended EOS is trained
  messages           tokenizer.apply_chat_template(...,
                     return_assistant_tokens_mask=True): the tokens inside
                     the template's {% generation %} blocks

An example is cut to SEQ+1 tokens, lorac's row (inputs are the first SEQ,
targets the last SEQ). The loss is HF's causal-LM loss: logits at position
t against the token at t+1 with labels -100 where not trained, summed over
every example of the file and divided by the number of trained tokens.
Deterministic: fixed corpus, float32, CPU, eval mode, dropout 0.

    python conformance/make_jsonl_fixtures.py
"""

import argparse
import json
import os

import torch
import torch.nn.functional as F

import peft
import tokenizers
import transformers
from peft import PeftModel
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer

SEQ = 32  # the seq of internal/gen/hfgpt2 (n_positions of the model)
VOCAB = 64
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>\\n' }}{% endgeneration %}"
    "{% else %}"
    "{{ message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TEXT = [
    {"text": "the cat sat on the mat."},
    {"text": "a dog ran to the red door and sat."},
    {"text": "the sun is hot and the sea is cold, so the cat sat in the sun on the mat by the sea all day."},
]

PROMPT = [
    {"prompt": "what is red? answer:", "completion": " the door is red."},
    {"prompt": "where is the cat? answer:", "completion": " on the mat."},
    {"prompt": "is the sea cold?", "completion": " yes, it is cold."},
    {"prompt": "name a hot thing:", "completion": " the sun."},
]

CHAT = [
    {"messages": [
        {"role": "user", "content": "where is the cat?"},
        {"role": "assistant", "content": "on the mat."},
    ]},
    {"messages": [
        {"role": "system", "content": "be short."},
        {"role": "user", "content": "is it hot?"},
        {"role": "assistant", "content": "yes."},
        {"role": "user", "content": "the sea?"},
        {"role": "assistant", "content": "cold."},
    ]},
    {"messages": [
        {"role": "user", "content": "a red thing?"},
        {"role": "assistant", "content": "the door."},
        {"role": "user", "content": "thanks."},
    ]},
]


def corpus_lines():
    for r in TEXT:
        yield r["text"]
    for r in PROMPT:
        yield r["prompt"] + r["completion"]
    for r in CHAT:
        for m in r["messages"]:
            yield m["role"] + "\n" + m["content"] + "\n"


def make_tokenizer():
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in SPECIALS],
        show_progress=False,
    )
    tk.train_from_iterator(list(corpus_lines()) * 4, trainer)
    assert tk.get_vocab_size() <= VOCAB, tk.get_vocab_size()
    return tk


def mask_prompt(tok, prompt, completion):
    enc = tok(prompt + completion, add_special_tokens=False, return_offsets_mapping=True)
    ids, train = [], []
    for i, (s, e) in zip(enc["input_ids"], enc["offset_mapping"]):
        if s < len(prompt) < e:
            raise SystemExit(f"a token straddles the prompt's end in {prompt!r} + {completion!r}")
        ids.append(i)
        train.append(s >= len(prompt))
    return ids + [tok.eos_token_id], train + [True]


def examples(tok, name, records):
    out = []
    for r in records:
        if name == "text":
            ids = tok(r["text"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            train = [True] * len(ids)
        elif name == "prompt":
            ids, train = mask_prompt(tok, r["prompt"], r["completion"])
        else:
            enc = tok.apply_chat_template(
                r["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
            )
            ids, train = list(enc["input_ids"]), [bool(m) for m in enc["assistant_masks"]]
            assert any(train), r
        out.append((ids[: SEQ + 1], train[: SEQ + 1]))
    return out


@torch.no_grad()
def masked_loss(model, exs):
    total, count = 0.0, 0
    for ids, train in exs:
        # Inputs are all but the last token (at most SEQ, the model's
        # positions); the targets are the labels shifted by one, as HF's
        # causal-LM loss shifts them.
        x = torch.tensor([ids[:-1]])
        tgt = torch.tensor([t if m else -100 for t, m in zip(ids[1:], train[1:])])
        logits = model(input_ids=x).logits[0].double()
        total += F.cross_entropy(logits, tgt, ignore_index=-100, reduction="sum").item()
        count += int((tgt != -100).sum())
    return total / count, count


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "testdata", "jsonl"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    tk = make_tokenizer()
    tk.save(os.path.join(args.out, "tokenizer.json"))
    cfg = {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "add_bos_token": False,
        "model_max_length": SEQ,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    tok = AutoTokenizer.from_pretrained(args.out)
    assert tok.eos_token_id == tk.token_to_id("<|endoftext|>")

    gpt2 = os.path.join(here, "testdata", "gpt2")
    base = AutoModelForCausalLM.from_pretrained(gpt2, dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(base, os.path.join(gpt2, "adapter")).eval()

    expected = {
        "seq": SEQ,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "files": {},
    }
    for name, records in (("text", TEXT), ("prompt", PROMPT), ("chat", CHAT)):
        path = os.path.join(args.out, name + ".jsonl")
        with open(path, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        exs = examples(tok, name, records)
        loss, count = masked_loss(model, exs)
        with model.disable_adapter():
            loss_base, _ = masked_loss(model, exs)
        expected["files"][name + ".jsonl"] = {
            "loss": loss,
            "loss_base": loss_base,
            "trained_tokens": count,
            "examples": [{"ids": ids, "train": train} for ids, train in exs],
        }
        print(f"{name}.jsonl: {len(exs)} examples, {count} trained tokens, loss {loss:.6f} (base {loss_base:.6f})")
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
