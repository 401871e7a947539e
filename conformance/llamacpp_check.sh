#!/usr/bin/env bash
# llamacpp_check.sh — by-hand check that a lorac-exported GGUF LoRA adapter is
# accepted by llama.cpp itself and changes its logits exactly as PEFT's
# adapter changes PyTorch's (the committed llama fixture's reference logits).
#
# Not part of `go test` or CI: it needs a llama.cpp checkout built by hand.
#
# Usage (from anywhere):
#
#     conformance/llamacpp_check.sh LLAMA_BUILD_DIR [VENV]
#
#   LLAMA_BUILD_DIR  a llama.cpp CMake build directory with the shared
#                    library (libllama.so under bin/ or src/), e.g. made by
#                      cmake -B build -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON \
#                        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
#                        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
#                        -DCMAKE_BUILD_TYPE=Release
#                      cmake --build build -j2 --target llama
#                    (only the library is needed; no llama.cpp tool is used).
#   VENV             the Python venv of conformance/README.md (torch,
#                    transformers, peft, safetensors, numpy); default
#                    .venv. `sentencepiece` and `protobuf` are pip
#                    installed into it if missing (PyPI).
#
# Environment:
#   LLAMA_CPP_SRC    llama.cpp source tree (converters, headers); default: the
#                    build directory's parent.
#   WORK             scratch directory; default: a fresh mktemp -d.
#
# What it does:
#   1. builds lorac and exports the fixture's PEFT adapter with
#      `lorac export --gguf` (-> lorac.gguf);
#   2. copies the fixture's base model to WORK/model and adds a tiny
#      SentencePiece tokenizer.model (40 pieces, trained here on random
#      text): convert_hf_to_gguf.py insists on a tokenizer and the fixture has
#      none. The converter pads the vocab to the config's 64 with [PADn]
#      tokens. Token *ids* are fed straight to llama_decode, so the tokenizer
#      never touches the numbers;
#   3. converts the base with llama.cpp's convert_hf_to_gguf.py --outtype f32
#      and, as a control, the PEFT adapter with llama.cpp's own
#      convert_lora_to_gguf.py --outtype f32 (-> llamacpp.gguf);
#   4. compiles a ~50-line C driver (written below, our own code) against
#      libllama: it loads the model, optionally one LoRA adapter at scale 1,
#      decodes the token ids with logits on at every position (F32 KV cache,
#      no flash attention, 1 thread) and writes the raw float32 logits;
#   5. compares, for both fixture sequences, max|diff| / max|ref| of
#        base                 vs reference logits_base          (must be <= TOL)
#        base + lorac.gguf    vs reference logits               (must be <= TOL)
#        base + llamacpp.gguf vs reference logits               (reported only)
#        base + llamacpp.gguf vs PEFT with alpha_pattern dropped (must be <= TOL)
#      The fixture's adapter has alpha_pattern {"down_proj": 3} (scale 1.5
#      with rank 2). A GGUF adapter carries one adapter.lora.alpha and
#      llama.cpp scales each module by alpha / rank, so lorac folds
#      1.5 / (8/2) into ffn_down's lora_b; llama.cpp's converter ignores
#      alpha_pattern, so its file applies 4.0 to ffn_down and is expected to
#      miss `logits` by far. The last line checks that this is the only
#      difference, i.e. that the pipeline itself is sound.
#
# Exit status: 0 when every "must" holds, 1 otherwise, 2 on a usage/setup
# error. TOL is 1e-5 (F32 everywhere; seen ~1e-6).
set -euo pipefail

die() { echo "llamacpp_check: $*" >&2; exit 2; }

[ $# -ge 1 ] || die "usage: $0 LLAMA_BUILD_DIR [VENV]"
BUILD=$(cd "$1" && pwd) || die "no build directory $1"
VENV=${2:-.venv}
SRC=${LLAMA_CPP_SRC:-$(dirname "$BUILD")}
PY="$VENV/bin/python"
REPO=$(cd "$(dirname "$0")/.." && pwd)          # lorac repository root
FIX="$REPO/conformance/testdata/llama"
REF="$FIX/reference.safetensors"
WORK=${WORK:-$(mktemp -d)}
TOL=1e-5
mkdir -p "$WORK"

[ -x "$PY" ] || die "no python in venv $VENV"
[ -f "$SRC/convert_hf_to_gguf.py" ] || die "no convert_hf_to_gguf.py in $SRC (set LLAMA_CPP_SRC)"
[ -f "$SRC/include/llama.h" ] || die "no include/llama.h in $SRC"
LIBDIR=""
for d in "$BUILD/bin" "$BUILD/src" "$BUILD/lib"; do
    [ -f "$d/libllama.so" ] && { LIBDIR=$d; break; }
done
[ -n "$LIBDIR" ] || die "no libllama.so under $BUILD/{bin,src,lib}; build with -DBUILD_SHARED_LIBS=ON --target llama"
echo "llama.cpp source $SRC, library $LIBDIR, work dir $WORK"

# The converters need sentencepiece (tokenizer.model) and protobuf.
"$PY" -c 'import sentencepiece, google.protobuf' 2>/dev/null ||
    "$VENV/bin/pip" install -q sentencepiece protobuf

# --- 1. lorac export --------------------------------------------------------
(cd "$REPO" && go build -o "$WORK/lorac" ./cmd/lorac)
"$WORK/lorac" export --gguf "$FIX/adapter" -o "$WORK/lorac.gguf" --from "$FIX"

# --- 2. base model copy with a tiny tokenizer --------------------------------
mkdir -p "$WORK/model"
cp "$FIX/config.json" "$FIX/model.safetensors" "$WORK/model/"
"$PY" - "$WORK" <<'EOF'
import random, sys, sentencepiece as spm
work = sys.argv[1]
random.seed(0)
words = ["".join(random.choice("abcdefghij") for _ in range(random.randint(1, 5))) for _ in range(2000)]
open(f"{work}/sp.txt", "w").write("\n".join(" ".join(words[i:i + 10]) for i in range(0, 2000, 10)))
# 40 pieces <= the model's 64 (the converter pads the rest); ids 0/1/2 =
# unk/bos/eos as in config.json.
spm.SentencePieceTrainer.train(input=f"{work}/sp.txt", model_prefix=f"{work}/model/tokenizer",
    vocab_size=40, model_type="bpe", character_coverage=1.0, byte_fallback=False,
    unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
EOF

# --- 3. llama.cpp's converters -----------------------------------------------
"$PY" "$SRC/convert_hf_to_gguf.py" "$WORK/model" --outtype f32 \
    --outfile "$WORK/base-f32.gguf" >"$WORK/convert_base.log" 2>&1 ||
    { tail -20 "$WORK/convert_base.log"; die "convert_hf_to_gguf.py failed"; }
"$PY" "$SRC/convert_lora_to_gguf.py" "$FIX/adapter" --base "$WORK/model" --outtype f32 \
    --outfile "$WORK/llamacpp.gguf" >"$WORK/convert_lora.log" 2>&1 ||
    { tail -20 "$WORK/convert_lora.log"; die "convert_lora_to_gguf.py failed"; }

# --- 4. the C driver ---------------------------------------------------------
# llama.h changed over time: llama_set_adapter_lora(ctx, a, scale) became
# llama_set_adapters_lora(ctx, as, n, scales), and bool flash_attn became
# enum flash_attn_type. Pick the spelling this checkout has.
DEFS=""
grep -q 'llama_set_adapters_lora' "$SRC/include/llama.h" && DEFS="$DEFS -DHAVE_SET_ADAPTERS_LORA"
grep -q 'flash_attn_type' "$SRC/include/llama.h" && DEFS="$DEFS -DHAVE_FLASH_ATTN_TYPE"
cat >"$WORK/logits.c" <<'EOF'
// logits MODEL.gguf OUT.f32 LORA.gguf|- SCALE TOK...
// Decodes the token ids at positions 0..n-1 (one sequence, logits on
// everywhere) and writes [n, n_vocab] float32 logits to OUT.
#include "llama.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc < 6) { fprintf(stderr, "usage: %s MODEL OUT LORA|- SCALE TOK...\n", argv[0]); return 2; }
    const char *model_path = argv[1], *out_path = argv[2], *lora_path = argv[3];
    float scale = (float) atof(argv[4]);
    int n = argc - 5;
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) { fprintf(stderr, "model load failed\n"); return 1; }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 32; cp.n_batch = 32; cp.n_ubatch = 32; cp.n_seq_max = 1;
    cp.n_threads = 1; cp.n_threads_batch = 1;
    cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32;   /* default is F16 */
#ifdef HAVE_FLASH_ATTN_TYPE
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
#else
    cp.flash_attn = false;
#endif
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "context init failed\n"); return 1; }
    if (strcmp(lora_path, "-") != 0) {
        struct llama_adapter_lora *lora = llama_adapter_lora_init(model, lora_path);
        if (!lora) { fprintf(stderr, "LoRA adapter rejected: %s\n", lora_path); return 3; }
#ifdef HAVE_SET_ADAPTERS_LORA
        if (llama_set_adapters_lora(ctx, &lora, 1, &scale) != 0) { fprintf(stderr, "set adapter failed\n"); return 3; }
#else
        if (llama_set_adapter_lora(ctx, lora, scale) != 0) { fprintf(stderr, "set adapter failed\n"); return 3; }
#endif
    }
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = atoi(argv[5 + i]); b.pos[i] = i;
        b.n_seq_id[i] = 1; b.seq_id[i][0] = 0; b.logits[i] = 1;
    }
    b.n_tokens = n;
    if (llama_decode(ctx, b) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
    int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    FILE *f = fopen(out_path, "wb");
    if (!f) { perror(out_path); return 1; }
    for (int i = 0; i < n; i++) fwrite(llama_get_logits_ith(ctx, i), sizeof(float), nv, f);
    fclose(f);
    llama_batch_free(b); llama_free(ctx); llama_model_free(model); llama_backend_free();
    return 0;
}
EOF
# shellcheck disable=SC2086
cc -O1 $DEFS -o "$WORK/logits" "$WORK/logits.c" -I"$SRC/include" -I"$SRC/ggml/include" \
    -L"$LIBDIR" -lllama -Wl,-rpath,"$LIBDIR"

# --- 5. run and compare ------------------------------------------------------
# PEFT logits with alpha_pattern dropped, for the control (what llama.cpp's
# converter encodes); written as WORK/peft_noalpha.<seq>.f32.
"$PY" - "$FIX" "$WORK" <<'EOF' 2>/dev/null
import json, shutil, sys, os, numpy as np, torch
from transformers import LlamaForCausalLM
from peft import PeftModel
from safetensors.numpy import load_file
fix, work = sys.argv[1], sys.argv[2]
d = f"{work}/adapter_noalpha"; os.makedirs(d, exist_ok=True)
shutil.copy(f"{fix}/adapter/adapter_model.safetensors", d)
c = json.load(open(f"{fix}/adapter/adapter_config.json")); c["alpha_pattern"] = {}
json.dump(c, open(f"{d}/adapter_config.json", "w"))
m = LlamaForCausalLM.from_pretrained(fix, dtype=torch.float32, attn_implementation="eager")
pm = PeftModel.from_pretrained(m, d).eval()
tok = load_file(f"{fix}/reference.safetensors")["tokens"].astype(np.int64)
for s in range(tok.shape[0]):
    with torch.no_grad():
        pm(torch.tensor(tok[s:s + 1])).logits[0].numpy().astype(np.float32).tofile(f"{work}/peft_noalpha.{s}.f32")
EOF

cat >"$WORK/compare.py" <<'EOF'
# compare.py REF.safetensors SEQ tokens           -> prints the token ids
# compare.py REF.safetensors SEQ KEY|FILE GOT TOL  -> rel error, exit 1 if > TOL (TOL "-" = report only)
import sys, numpy as np
from safetensors.numpy import load_file
ref = load_file(sys.argv[1]); seq = int(sys.argv[2])
if sys.argv[3] == "tokens":
    print(" ".join(str(int(t)) for t in ref["tokens"][seq])); sys.exit(0)
key, got_path, tol = sys.argv[3], sys.argv[4], sys.argv[5]
shape = ref["logits"][seq].shape
r = ref[key][seq] if key in ref else np.fromfile(key, dtype=np.float32).reshape(shape)
got = np.fromfile(got_path, dtype=np.float32).reshape(shape)
rel = float(np.abs(got - r).max() / np.abs(r).max())
ok = tol == "-" or rel <= float(tol)
print(f"  {got_path.rsplit('/', 1)[-1]:18s} vs {key.rsplit('/', 1)[-1]:22s} max|diff|/max|ref| = {rel:.3e}"
      + ("" if tol == "-" else ("  ok" if ok else f"  FAIL (> {tol})")))
sys.exit(0 if ok else 1)
EOF

fail=0
for s in 0 1; do
    TOK=$("$PY" "$WORK/compare.py" "$REF" $s tokens)
    echo "sequence $s: tokens $TOK"
    # shellcheck disable=SC2086
    {
        "$WORK/logits" "$WORK/base-f32.gguf" "$WORK/base.$s.f32" - 1 $TOK
        "$WORK/logits" "$WORK/base-f32.gguf" "$WORK/lorac.$s.f32" "$WORK/lorac.gguf" 1 $TOK
        "$WORK/logits" "$WORK/base-f32.gguf" "$WORK/llamacpp.$s.f32" "$WORK/llamacpp.gguf" 1 $TOK
    } 2>"$WORK/run.$s.log" || { tail -5 "$WORK/run.$s.log"; echo "  llama.cpp run failed"; fail=1; continue; }
    "$PY" "$WORK/compare.py" "$REF" $s logits_base "$WORK/base.$s.f32" $TOL || fail=1
    "$PY" "$WORK/compare.py" "$REF" $s logits "$WORK/lorac.$s.f32" $TOL || fail=1
    "$PY" "$WORK/compare.py" "$REF" $s logits "$WORK/llamacpp.$s.f32" - || true
    "$PY" "$WORK/compare.py" "$REF" $s "$WORK/peft_noalpha.$s.f32" "$WORK/llamacpp.$s.f32" $TOL || fail=1
done
grep -h "loaded .* tensors from lora file" "$WORK"/run.*.log | sort | uniq -c || true
if [ $fail = 0 ]; then echo "llamacpp_check: PASS"; else echo "llamacpp_check: FAIL"; fi
exit $fail
