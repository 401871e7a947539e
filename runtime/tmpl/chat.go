package tmpl

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Message is one turn of a conversation. Messages with more fields
// (tool_calls, reasoning_content, content as a list of parts) are passed to
// Chat.Render as decoded JSON instead (DecodeJSON).
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func (m Message) dict() *Dict {
	d := NewDict()
	d.Set("role", m.Role)
	d.Set("content", m.Content)
	return d
}

// Chat is a chat template with the special tokens it is rendered with.
type Chat struct {
	// Name is "chatml" for the built-in template, the name chosen from a
	// list of named templates, or "default".
	Name string
	// Source is the Jinja source of the template.
	Source string
	// Tokens are the tokenizer's special tokens as the template sees them:
	// bos_token, eos_token, unk_token, pad_token, … (only those set).
	Tokens map[string]string
	// Now is the clock strftime_now reads; nil means time.Now.
	Now func() time.Time

	t *Template
}

// ChatML is the source of the built-in "chatml" template:
// <|im_start|>ROLE\nCONTENT<|im_end|>\n per message, and
// <|im_start|>assistant\n when a generation prompt is asked for.
const ChatML = `{%- for message in messages -%}
{{- '<|im_start|>' ~ message.role ~ '\n' ~ message.content ~ '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}`

// NewChat parses a chat template.
func NewChat(name, source string, tokens map[string]string) (*Chat, error) {
	t, err := Parse(name, source)
	if err != nil {
		return nil, err
	}
	c := &Chat{Name: name, Source: source, Tokens: map[string]string{}, t: t}
	for k, v := range tokens {
		c.Tokens[k] = v
	}
	return c, nil
}

// Builtin returns a built-in template by name; there is one, "chatml",
// used when a tokenizer has no chat template of its own.
func Builtin(name string) (*Chat, error) {
	if name != "chatml" {
		return nil, fmt.Errorf("tmpl: no built-in chat template %q (there is \"chatml\")", name)
	}
	return NewChat("chatml", ChatML, nil)
}

// ErrNoChatTemplate is the error (under errors.Is) of a tokenizer config
// without a chat template; callers then use Builtin("chatml").
var ErrNoChatTemplate = errors.New("tokenizer_config.json has no chat_template")

// specialTokens are the tokenizer attributes transformers passes to chat
// templates (its special_tokens_map), by their tokenizer_config.json keys.
var specialTokens = []string{"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}

// ParseChatConfig reads the chat template and special tokens of a
// tokenizer_config.json. chat_template is a string or a list of
// {"name", "template"}; name chooses from the list ("" means "default").
// Special tokens are strings or added-token objects {"content": …}. A
// config without a chat template is an error that says so.
func ParseChatConfig(data []byte, name string) (*Chat, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("tmpl: tokenizer_config.json: %w", err)
	}
	tokens, err := configTokens(cfg)
	if err != nil {
		return nil, err
	}
	raw, ok := cfg["chat_template"]
	if !ok || string(raw) == "null" {
		return nil, fmt.Errorf("tmpl: %w; use the built-in \"chatml\" or give a template", ErrNoChatTemplate)
	}
	var src string
	if err := json.Unmarshal(raw, &src); err == nil {
		if name != "" && name != "default" {
			return nil, fmt.Errorf("tmpl: tokenizer_config.json has a single chat template, not one named %q", name)
		}
		return NewChat("default", src, tokens)
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("tmpl: tokenizer_config.json: chat_template is neither a string nor a list of {name, template}")
	}
	if name == "" {
		name = "default"
	}
	var names []string
	for _, e := range list {
		if e.Name == name {
			return NewChat(name, e.Template, tokens)
		}
		names = append(names, e.Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("tmpl: tokenizer_config.json has no chat template named %q (it has %q)", name, names)
}

func configTokens(cfg map[string]json.RawMessage) (map[string]string, error) {
	tokens := map[string]string{}
	for _, k := range specialTokens {
		raw, ok := cfg[k]
		if !ok || string(raw) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			tokens[k] = s
			continue
		}
		var added struct {
			Content *string `json:"content"`
		}
		if err := json.Unmarshal(raw, &added); err != nil || added.Content == nil {
			return nil, fmt.Errorf("tmpl: tokenizer_config.json: %s is neither a string nor an object with \"content\"", k)
		}
		tokens[k] = *added.Content
	}
	return tokens, nil
}

// LoadChat reads the chat template of a Hugging Face model directory, as
// transformers does: template files, when there are any, replace the
// config's chat_template — chat_template.jinja is "default" and
// additional_chat_templates/NAME.jinja is NAME — else tokenizer_config.json's
// chat_template. The special tokens come from tokenizer_config.json. name
// chooses a template ("" for "default").
func LoadChat(dir, name string) (*Chat, error) {
	data, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, fmt.Errorf("tmpl: %w", err)
	}
	files := map[string]string{}
	if _, err := os.Stat(filepath.Join(dir, "chat_template.jinja")); err == nil {
		files["default"] = filepath.Join(dir, "chat_template.jinja")
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tmpl: %w", err)
	}
	extra, _ := filepath.Glob(filepath.Join(dir, "additional_chat_templates", "*.jinja"))
	for _, p := range extra {
		files[strings.TrimSuffix(filepath.Base(p), ".jinja")] = p
	}
	if len(files) == 0 {
		return ParseChatConfig(data, name)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("tmpl: tokenizer_config.json: %w", err)
	}
	tokens, err := configTokens(cfg)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = "default"
	}
	path, ok := files[name]
	if !ok {
		var names []string
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("tmpl: %s has no chat template named %q (it has %q)", dir, name, names)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tmpl: %w", err)
	}
	return NewChat(name, string(src), tokens)
}

// Options are the extra inputs of Render.
type Options struct {
	// AddGenerationPrompt appends the header that starts an assistant turn.
	AddGenerationPrompt bool
	// Tools is the list of tool schemas (decoded JSON), or nil.
	Tools any
	// Vars are more template variables (enable_thinking, date_string, …);
	// they override the special tokens, as transformers' kwargs do.
	Vars map[string]any
}

// Apply renders a conversation of plain messages, as transformers'
// apply_chat_template(messages, tokenize=False, add_generation_prompt=…)
// does.
func (c *Chat) Apply(messages []Message, addGenerationPrompt bool) (string, error) {
	return c.Render(messages, Options{AddGenerationPrompt: addGenerationPrompt})
}

// Render renders a conversation: messages is a []Message or a list of
// message objects decoded with DecodeJSON. The template sees messages,
// tools, documents (none), add_generation_prompt, the special tokens and
// opts.Vars. An error from raise_exception is an *Error with Raised set and
// the template's message.
func (c *Chat) Render(messages any, opts Options) (string, error) {
	out, _, err := c.RenderSpans(messages, opts)
	return out, err
}

// RenderSpans is Render that also returns the byte ranges of the output
// that the template's {% generation %} blocks wrote, in order: the
// assistant text transformers' return_assistant_tokens_mask marks. A
// template without such blocks gives none.
func (c *Chat) RenderSpans(messages any, opts Options) (string, []Span, error) {
	msgs, err := fromGo(messages)
	if err != nil {
		return "", nil, err
	}
	list, ok := msgs.([]any)
	if !ok {
		return "", nil, fmt.Errorf("tmpl: messages must be a list, not %s", typeName(msgs))
	}
	if len(list) == 0 {
		return "", nil, errors.New("tmpl: cannot apply a chat template to an empty conversation")
	}
	for i, m := range list {
		d, ok := m.(*Dict)
		if !ok {
			return "", nil, fmt.Errorf("tmpl: message %d is a %s, not an object", i, typeName(m))
		}
		// transformers drops keys whose value is null
		clean := NewDict()
		for _, k := range d.keys {
			if d.m[k] != nil {
				clean.set(k, d.m[k])
			}
		}
		list[i] = aliasReasoning(clean)
	}
	vars := map[string]any{}
	for k, v := range c.Tokens {
		vars[k] = v
	}
	for k, v := range opts.Vars {
		vars[k] = v
	}
	vars["messages"] = list
	vars["tools"] = opts.Tools
	vars["documents"] = nil
	vars["add_generation_prompt"] = opts.AddGenerationPrompt
	now := c.Now
	if now == nil {
		now = time.Now
	}
	return c.t.renderSpans(vars, now)
}

// aliasReasoning gives a message with reasoning under any of its names
// (reasoning_content, thinking, reasoning) both thinking and
// reasoning_content, as transformers does before rendering.
func aliasReasoning(m *Dict) *Dict {
	var reasoning any
	for _, k := range []string{"reasoning_content", "thinking", "reasoning"} {
		if v, ok := m.m[k]; ok && v != nil {
			reasoning = v
			break
		}
	}
	if reasoning == nil {
		return m
	}
	out := NewDict()
	out.Set("thinking", reasoning)
	for _, k := range m.keys {
		out.set(k, m.m[k])
	}
	out.Set("reasoning_content", reasoning)
	return out
}
