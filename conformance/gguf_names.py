"""By-hand check that lorac's GGUF LoRA exports use llama.cpp's names.

Reads each file with llama.cpp's own GGUF library (PyPI: gguf) and checks,
for the file's general.architecture, that every tensor is NAME.weight.lora_a
or .lora_b where NAME is a tensor llama.cpp's model of that architecture has
(gguf.constants.MODEL_TENSORS). Exit status 1 names the tensors that are not.

    pip install gguf
    for f in llama3 mistral qwen2 qwen3 gemma gemma2 gemma3; do
        lorac export --gguf conformance/testdata/$f/adapter -o $f.gguf --from conformance/testdata/$f
    done
    python conformance/gguf_names.py *.gguf
"""
import re
import sys

import gguf
from gguf.constants import MODEL_ARCH_NAMES, MODEL_TENSORS, TENSOR_NAMES


def field_text(reader, key):
    return bytes(reader.fields[key].parts[-1]).decode()


def check(path):
    reader = gguf.GGUFReader(path)
    arch = field_text(reader, "general.architecture")
    archs = [k for k, v in MODEL_ARCH_NAMES.items() if v == arch]
    if not archs:
        return [f"architecture {arch!r} is not one of llama.cpp's"]
    allowed = {TENSOR_NAMES[t] for t in MODEL_TENSORS[archs[0]]}
    bad = []
    for t in reader.tensors:
        m = re.match(r"^(.*)\.weight\.lora_[ab]$", t.name)
        name = re.sub(r"^blk\.\d+\.", "blk.{bid}.", m.group(1)) if m else None
        if name not in allowed:
            bad.append(t.name)
    print(f"{path}: {arch} {field_text(reader, 'general.type')}, {len(reader.tensors)} tensors, "
          f"{'all llama.cpp names' if not bad else 'not llama.cpp names: ' + ', '.join(bad)}")
    return bad


if __name__ == "__main__":
    failed = [p for p in sys.argv[1:] if check(p)]
    sys.exit(1 if failed else 0)
