package driver

import (
	"slices"
	"testing"

	"lorac.dev/lorac/runtime/tok"
)

// TestChatPrompt: generate --chat renders the prompt as a user turn with
// the generation prompt, stops at EOS and at a one-token end of turn, and
// prints the reply alone.
func TestChatPrompt(t *testing.T) {
	path := bpeDir(t, "llama", map[string]any{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": false,
		"chat_template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"})
	lt, err := tok.LoadTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	text, eot, stop, err := chatPrompt(lt, path, "", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if want := "<s>[user] hello[assistant] "; text != want { // trim_blocks eats the newline after endif
		t.Errorf("prompt %q, want %q", text, want)
	}
	eos, _ := lt.TokenID("</s>")
	if eot != "</s>" || !slices.Equal(stop, []int32{eos}) {
		t.Errorf("end of turn %q, stop %v; want </s> and [%d]", eot, stop, eos)
	}
	reply := append(lt.Encode("the dog"), eos)
	if got := chatReply(lt, reply, stop, eot); got != "the dog" {
		t.Errorf("reply %q, want %q", got, "the dog")
	}

	// The byte tokenizer with the built-in ChatML: the end of turn is many
	// tokens, so the reply is cut at its text.
	var bt tok.ByteTokenizer
	text, eot, stop, err = chatPrompt(bt, "", "chatml", "hi")
	if err != nil {
		t.Fatal(err)
	}
	if text != "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n" || eot != "<|im_end|>" || len(stop) != 0 {
		t.Errorf("chatml: %q, %q, %v", text, eot, stop)
	}
	if got := chatReply(bt, bt.Encode("ahoy<|im_end|>\n<|im_start|>user"), stop, eot); got != "ahoy" {
		t.Errorf("chatml reply %q, want ahoy", got)
	}
	// Without a template, --chat says what to pass.
	if _, _, _, err := chatPrompt(bt, "", "", "hi"); err == nil {
		t.Error("--chat with no template at all was accepted")
	}
}
