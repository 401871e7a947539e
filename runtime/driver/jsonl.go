package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"lorac.dev/lorac/runtime/tmpl"
)

// IsJSONL reports whether a data path names a JSONL file of examples (by its
// .jsonl extension, in any case); other paths are plain text.
func IsJSONL(path string) bool {
	return strings.EqualFold(filepath.Ext(path), ".jsonl")
}

// Shape is the kind of one JSONL record.
type Shape int

const (
	// ShapeText is {"text": …}: every token is trained.
	ShapeText Shape = iota + 1
	// ShapePrompt is {"prompt": …, "completion": …}: the prompt is masked,
	// the completion (and EOS) trained.
	ShapePrompt
	// ShapeChat is {"messages": [{"role": …, "content": …}, …]}: rendered
	// by a chat format; only the assistant turns are trained.
	ShapeChat
)

func (s Shape) String() string {
	switch s {
	case ShapeText:
		return "text"
	case ShapePrompt:
		return "prompt/completion"
	case ShapeChat:
		return "messages"
	}
	return fmt.Sprintf("Shape(%d)", int(s))
}

// Message is one turn of a chat record: the chat templates' message.
type Message = tmpl.Message

// Record is one line of a JSONL file.
type Record struct {
	Line               int // 1-based line in the file
	Shape              Shape
	Text               string    // ShapeText
	Prompt, Completion string    // ShapePrompt
	Messages           []Message // ShapeChat
}

// ReadJSONL reads a JSONL file of records (see ParseJSONL).
func ReadJSONL(path string) ([]Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load dataset: %w", err)
	}
	return ParseJSONL(path, b)
}

// ParseJSONL parses JSONL data, one JSON object per line, each in one of the
// three shapes: {"text"}, {"prompt", "completion"} or {"messages": [{"role",
// "content"}…]}. Other keys are ignored (datasets often carry ids or
// metadata), but the keys of two shapes in one object are an error. A UTF-8
// byte-order mark before the first line and a carriage return ending a line
// are accepted; blank lines, invalid UTF-8, empty strings where text is
// trained, wrong types and unknown shapes are errors naming name:line and
// the problem. A file with no record is an error.
func ParseJSONL(name string, data []byte) ([]Record, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: the JSONL file is empty; write one JSON object per line", name)
	}
	lines := bytes.Split(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1] // the newline ending the last line
	}
	recs := make([]Record, 0, len(lines))
	for i, line := range lines {
		line = bytes.TrimSuffix(line, []byte("\r"))
		r, err := parseRecord(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, i+1, err)
		}
		r.Line = i + 1
		recs = append(recs, r)
	}
	return recs, nil
}

func parseRecord(line []byte) (Record, error) {
	if len(bytes.TrimSpace(line)) == 0 {
		return Record{}, errors.New("the line is empty; JSONL wants one JSON object on every line")
	}
	if !utf8.Valid(line) {
		return Record{}, errors.New("the line is not valid UTF-8")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return Record{}, fmt.Errorf("the line is a JSON %s, not an object", typeErr.Value)
		}
		return Record{}, fmt.Errorf("not valid JSON: %v", err)
	}
	_, hasText := obj["text"]
	_, hasPrompt := obj["prompt"]
	_, hasCompletion := obj["completion"]
	_, hasMessages := obj["messages"]
	var shapes []string
	if hasText {
		shapes = append(shapes, `"text"`)
	}
	if hasPrompt || hasCompletion {
		shapes = append(shapes, `"prompt"/"completion"`)
	}
	if hasMessages {
		shapes = append(shapes, `"messages"`)
	}
	switch {
	case len(shapes) == 0:
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, fmt.Sprintf("%q", k))
		}
		slices.Sort(keys)
		have := "no keys"
		if len(keys) > 0 {
			have = "keys " + strings.Join(keys, ", ")
		}
		return Record{}, fmt.Errorf(`unknown record shape (%s); write {"text": …}, {"prompt": …, "completion": …} or {"messages": [{"role": …, "content": …}, …]}`, have)
	case len(shapes) > 1:
		return Record{}, fmt.Errorf("the record mixes the keys of %s; give one shape per line", strings.Join(shapes, " and "))
	}
	switch {
	case hasText:
		s, err := nonEmptyString(obj, "text")
		return Record{Shape: ShapeText, Text: s}, err
	case hasPrompt || hasCompletion:
		if !hasPrompt {
			return Record{}, errors.New(`"completion" without "prompt"; a prompt/completion record has both`)
		}
		if !hasCompletion {
			return Record{}, errors.New(`"prompt" without "completion"; a prompt/completion record has both`)
		}
		p, err := stringField(obj, "prompt")
		if err != nil {
			return Record{}, err
		}
		c, err := nonEmptyString(obj, "completion")
		return Record{Shape: ShapePrompt, Prompt: p, Completion: c}, err
	}
	msgs, err := parseMessages(obj["messages"])
	return Record{Shape: ShapeChat, Messages: msgs}, err
}

// jsonKind names the JSON type of a raw value, for errors.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func stringField(obj map[string]json.RawMessage, key string) (string, error) {
	raw := obj[key]
	var s string
	if jsonKind(raw) != "a string" || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%q must be a string, not %s", key, jsonKind(raw))
	}
	return s, nil
}

func nonEmptyString(obj map[string]json.RawMessage, key string) (string, error) {
	s, err := stringField(obj, key)
	if err == nil && s == "" {
		err = fmt.Errorf("%q is empty: there is nothing to train on", key)
	}
	return s, err
}

func parseMessages(raw json.RawMessage) ([]Message, error) {
	var items []json.RawMessage
	if jsonKind(raw) != "an array" || json.Unmarshal(raw, &items) != nil {
		return nil, fmt.Errorf(`"messages" must be an array of {"role", "content"} objects, not %s`, jsonKind(raw))
	}
	if len(items) == 0 {
		return nil, errors.New(`"messages" is empty`)
	}
	msgs := make([]Message, len(items))
	assistant := false
	for i, it := range items {
		var obj map[string]json.RawMessage
		if jsonKind(it) != "an object" || json.Unmarshal(it, &obj) != nil {
			return nil, fmt.Errorf(`messages[%d] must be an object with "role" and "content", not %s`, i, jsonKind(it))
		}
		for _, k := range []string{"role", "content"} {
			if _, ok := obj[k]; !ok {
				return nil, fmt.Errorf("messages[%d] has no %q", i, k)
			}
		}
		role, err := stringField(obj, "role")
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %v", i, err)
		}
		if role == "" {
			return nil, fmt.Errorf(`messages[%d]: "role" is empty`, i)
		}
		content, err := stringField(obj, "content")
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %v", i, err)
		}
		msgs[i] = Message{Role: role, Content: content}
		assistant = assistant || role == "assistant"
	}
	if !assistant {
		return nil, errors.New(`"messages" has no "assistant" turn: there is nothing to train on`)
	}
	return msgs, nil
}

// ChatFormat renders a conversation as text, the way a chat template does:
// with addGenerationPrompt the text ends with what opens an assistant turn.
type ChatFormat interface {
	Render(msgs []Message, addGenerationPrompt bool) (string, error)
}

// TemplateFormat is a chat template (runtime/tmpl: Jinja, rendered as
// transformers' apply_chat_template renders it) as a ChatFormat.
type TemplateFormat struct{ Chat *tmpl.Chat }

// Render implements ChatFormat.
func (f TemplateFormat) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	return f.Chat.Apply(msgs, addGenerationPrompt)
}

// ChatML is the built-in chat format "chatml" (tmpl.Builtin): each turn is
// "<|im_start|>ROLE\nCONTENT<|im_end|>\n", and the generation prompt is
// "<|im_start|>assistant\n".
var ChatML = func() ChatFormat {
	c, err := tmpl.Builtin("chatml")
	if err != nil {
		panic(err) // a constant template: covered by tests
	}
	return TemplateFormat{c}
}()

// ChatPiece is a span of a rendered conversation and whether it is trained.
type ChatPiece struct {
	Text  string
	Train bool
}

// ChatPieces renders msgs with f and cuts the text into pieces, the
// assistant turns trained and everything else not. It finds each assistant
// turn by rendering prefixes: before turn i it renders msgs[:i] with the
// generation prompt (the text up to where the assistant's reply starts),
// then msgs[:i+1] (the text through the end of the reply, with whatever the
// template closes a turn with). The reply is the difference. Each render
// must extend the one before it, so that the pieces concatenate to the whole
// conversation; a template that rewrites earlier text (some drop a system
// prompt or reasoning once a later turn exists) is refused.
func ChatPieces(f ChatFormat, msgs []Message) ([]ChatPiece, error) {
	var pieces []ChatPiece
	prev := ""
	extend := func(s string, train bool, what string) error {
		if !strings.HasPrefix(s, prev) {
			return fmt.Errorf("the chat template's render of %s does not extend its render of the turns before; assistant turns cannot be found by prefixes", what)
		}
		if piece := s[len(prev):]; piece != "" {
			pieces = append(pieces, ChatPiece{Text: piece, Train: train})
		}
		prev = s
		return nil
	}
	for i, m := range msgs {
		if m.Role != "assistant" {
			continue
		}
		open, err := f.Render(msgs[:i], true)
		if err != nil {
			return nil, err
		}
		if err := extend(open, false, fmt.Sprintf("messages[:%d] with the generation prompt", i)); err != nil {
			return nil, err
		}
		full, err := f.Render(msgs[:i+1], false)
		if err != nil {
			return nil, err
		}
		if err := extend(full, true, fmt.Sprintf("messages[:%d]", i+1)); err != nil {
			return nil, err
		}
	}
	all, err := f.Render(msgs, false)
	if err != nil {
		return nil, err
	}
	if err := extend(all, false, "all messages"); err != nil {
		return nil, err
	}
	return pieces, nil
}
