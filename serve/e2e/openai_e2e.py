"""End-to-end test of `lorac serve` with the official openai client.

Run by serve/e2e/run.sh against a server on the fixture of
internal/cmd/servefixture (a tiny base with random weights and adapters
a0..a3). It checks completions, streaming, adapter selection, errors and
the load endpoint with the client users use, then runs a bounded load test
on loopback (concurrent clients on mixed adapters) and prints p50/p99
latency and tokens/s. Exits nonzero on the first failed check.

    python openai_e2e.py http://127.0.0.1:PORT ADAPTERS_DIR [--load-requests N] [--concurrency C]
"""

import argparse
import concurrent.futures
import json
import statistics
import sys
import time
import urllib.request

import openai


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("adapters")
    ap.add_argument("--load-requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.url + "/v1", api_key="unused", max_retries=0)

    ids = [m.id for m in client.models.list()]
    check(ids == ["tiny", "a0", "a1", "a2", "a3"], f"models.list names the base and the adapters: {ids}")

    def greedy(model, prompt="Once upon a time", n=12):
        return client.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=0)

    outs = {}
    for m in ids:
        c = greedy(m)
        check(c.object == "text_completion" and len(c.choices) == 1, f"{m}: a text_completion with one choice")
        check(c.choices[0].finish_reason == "length", f"{m}: finish_reason length")
        check(c.usage.completion_tokens == 12 and c.usage.prompt_tokens == 16
              and c.usage.total_tokens == 28, f"{m}: usage {c.usage}")
        check(greedy(m).choices[0].text == c.choices[0].text, f"{m}: greedy decoding repeats")
        outs[m] = c.choices[0].text
    check(len(set(outs.values())) == len(outs), "each adapter answers differently from the base and the others")

    s1 = client.completions.create(model="a2", prompt="seeded", max_tokens=16, temperature=0.9, top_p=0.95, seed=7)
    s2 = client.completions.create(model="a2", prompt="seeded", max_tokens=16, temperature=0.9, top_p=0.95, seed=7)
    check(s1.choices[0].text == s2.choices[0].text, "the same seed samples the same text")

    stream = client.completions.create(model="a1", prompt="Once upon a time", max_tokens=12, temperature=0,
                                       stream=True, stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.text
            finish = ch.finish_reason or finish
    check(text == outs["a1"], "streamed text equals the whole answer")
    check(finish == "length" and usage is not None and usage.completion_tokens == 12, "stream ends with finish_reason and usage")

    # A weighted mix rides in the request body (the client's extra_body).
    def mixed(adapters):
        return client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=12, temperature=0,
                                         extra_body={"adapters": adapters}).choices[0].text
    check(mixed([{"name": "a1", "weight": 1}]) == outs["a1"], "a mix of one adapter of weight 1 is that adapter")
    mix = mixed([{"name": "a0", "weight": 0.5}, {"name": "a3", "weight": 0.5}])
    check(mix == mixed([{"name": "a3", "weight": 0.5}, {"name": "a0", "weight": 0.5}]), "a mix does not depend on its order")
    check(mix not in (outs["a0"], outs["a3"]), "a half-and-half mix answers unlike either adapter")

    try:
        greedy("no-such-adapter")
        check(False, "an unknown model is an error")
    except openai.NotFoundError as e:
        check("no-such-adapter" in str(e), "an unknown model is a 404 naming it")
    try:
        client.completions.create(model="tiny", prompt="x", max_tokens=100000)
        check(False, "max_tokens past the context is an error")
    except openai.BadRequestError as e:
        check("max_tokens" in str(e), "max_tokens past the context is a 400 naming it")

    # vLLM's adapter endpoints, as clients call them.
    req = urllib.request.Request(args.url + "/v1/load_lora_adapter", method="POST",
                                 data=json.dumps({"lora_name": "again", "lora_path": args.adapters + "/a3"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        check(r.status == 200, "load_lora_adapter")
    check(greedy("again").choices[0].text == outs["a3"], "a loaded adapter serves like the same adapter from the directory")

    # Bounded load test: concurrent clients on mixed adapters.
    lat, ntok = [], 0

    def one(i):
        t0 = time.perf_counter()
        c = client.completions.create(model=ids[i % len(ids)], prompt=f"request {i}:", max_tokens=args.max_tokens,
                                      temperature=0.8, seed=i)
        return time.perf_counter() - t0, c.usage.completion_tokens

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        for d, n in pool.map(one, range(args.load_requests)):
            lat.append(d)
            ntok += n
    wall = time.perf_counter() - t0
    lat.sort()
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    check(ntok == args.load_requests * args.max_tokens, "every load-test request got all its tokens")
    print(json.dumps({"requests": args.load_requests, "concurrency": args.concurrency, "max_tokens": args.max_tokens,
                      "p50_s": round(p50, 4), "p99_s": round(p99, 4), "tokens_per_s": round(ntok / wall, 1),
                      "wall_s": round(wall, 2)}))


if __name__ == "__main__":
    main()
