package driver

import (
	"errors"
	"slices"
	"strings"

	"lorac.dev/lorac/runtime/tok"
)

// chatPrompt renders prompt as a user's message with the chat format that
// chatTemplate names ("" for the tokenizer's own template, as in training)
// and the generation prompt. It returns the text to encode, the template's
// end of an assistant turn (the text it writes after a reply), and the
// tokens that end generation: the tokenizer's EOS and the end of turn when
// it is one token.
func chatPrompt(t tok.Tokenizer, tokPath, chatTemplate, prompt string) (text, endOfTurn string, stop []int32, err error) {
	sp, err := LoadSpecials(tokPath, t)
	if err != nil {
		return "", "", nil, err
	}
	enc, err := NewEncoder(t.Encode, sp, chatTemplate)
	if err != nil {
		return "", "", nil, err
	}
	if enc.Chat == nil {
		return "", "", nil, enc.ChatErr
	}
	user := []Message{{Role: "user", Content: prompt}}
	if text, err = enc.Chat.Render(user, true); err != nil {
		return "", "", nil, err
	}
	// The end of turn is what the template writes after a reply: render one
	// with a marker and take what follows it.
	const marker = "\x00reply\x00"
	whole, err := enc.Chat.Render(append(user, Message{Role: "assistant", Content: marker}), false)
	if err != nil {
		return "", "", nil, err
	}
	if i := strings.Index(whole, marker); i >= 0 {
		endOfTurn = strings.TrimSpace(whole[i+len(marker):])
	}
	if sp.EOS >= 0 {
		stop = append(stop, sp.EOS)
	}
	if ids := t.Encode(endOfTurn); len(ids) == 1 && !slices.Contains(stop, ids[0]) {
		stop = append(stop, ids[0])
	}
	if text == "" {
		return "", "", nil, errors.New("the chat template rendered the prompt as nothing")
	}
	return text, endOfTurn, stop, nil
}

// chatReply decodes the generated tokens of a reply, without the token that
// stopped it, cut where the template's end of turn begins.
func chatReply(t tok.Tokenizer, gen, stop []int32, endOfTurn string) string {
	if n := len(gen); n > 0 && slices.Contains(stop, gen[n-1]) {
		gen = gen[:n-1]
	}
	s := t.Decode(gen)
	if endOfTurn != "" {
		if i := strings.Index(s, endOfTurn); i >= 0 {
			s = s[:i]
		}
	}
	return strings.TrimSpace(s)
}
