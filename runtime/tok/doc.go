// Package tok turns text into token ids and back: the byte tokenizer, and
// byte-pair encoding read from a Hugging Face tokenizer.json. It imports
// only the standard library.
package tok
