// Package tok turns text into token ids and back: the byte tokenizer, and
// byte-pair encoding read from a Hugging Face tokenizer.json (with its
// normalizers, pre-tokenizers, added tokens, post-processor and decoders,
// and the BOS/EOS of tokenizer_config.json). It imports only the standard
// library.
package tok
