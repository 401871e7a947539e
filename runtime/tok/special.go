package tok

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Special tokens: the post_processor of tokenizer.json (what
// encode(text, add_special_tokens=True) adds around the text) and the
// BOS/EOS settings of the tokenizer_config.json beside it.

// postProc is what a post-processor adds around the ids of one text.
type postProc struct {
	prefix, suffix []int32
}

type postComponent struct {
	Type          string                     `json:"type"`
	Processors    []json.RawMessage          `json:"processors"`
	Single        []map[string]templateItem  `json:"single"`
	SpecialTokens map[string]templateSpecial `json:"special_tokens"`
	Sep           []json.RawMessage          `json:"sep"`
	Cls           []json.RawMessage          `json:"cls"`
}

type templateItem struct {
	ID string `json:"id"`
}

type templateSpecial struct {
	IDs []int64 `json:"ids"`
}

// parsePostProcessor reads the parts of a post_processor that matter for
// one text: TemplateProcessing's single template, RobertaProcessing's and
// BertProcessing's cls/sep, ByteLevel (offsets only: nothing) and a
// Sequence of them.
func parsePostProcessor(raw json.RawMessage, vocabSize int) (postProc, error) {
	var c postComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return postProc{}, fmt.Errorf("post_processor: %v", err)
	}
	checkID := func(what string, id int64) (int32, error) {
		if id < 0 || id >= int64(vocabSize) {
			return 0, fmt.Errorf("post_processor %s has id %d outside the vocabulary", what, id)
		}
		return int32(id), nil
	}
	switch c.Type {
	case "ByteLevel":
		return postProc{}, nil
	case "Sequence":
		var p postProc
		for _, r := range c.Processors {
			q, err := parsePostProcessor(r, vocabSize)
			if err != nil {
				return postProc{}, err
			}
			// Each processor wraps what the ones before it made.
			p.prefix = append(append([]int32{}, q.prefix...), p.prefix...)
			p.suffix = append(p.suffix, q.suffix...)
		}
		return p, nil
	case "RobertaProcessing", "BertProcessing":
		var p postProc
		for _, part := range []struct {
			name string
			raw  []json.RawMessage
			dst  *[]int32
		}{{"cls", c.Cls, &p.prefix}, {"sep", c.Sep, &p.suffix}} {
			var id int64
			if len(part.raw) != 2 || json.Unmarshal(part.raw[1], &id) != nil {
				return postProc{}, fmt.Errorf("post_processor %s %s is not [token, id]", c.Type, part.name)
			}
			v, err := checkID(part.name, id)
			if err != nil {
				return postProc{}, err
			}
			*part.dst = []int32{v}
		}
		return p, nil
	case "TemplateProcessing":
		var p postProc
		seenA := false
		for _, item := range c.Single {
			if seq, ok := item["Sequence"]; ok {
				if seq.ID != "A" || seenA {
					return postProc{}, fmt.Errorf("post_processor TemplateProcessing single template uses sequence %q (only one $A is supported)", seq.ID)
				}
				seenA = true
				continue
			}
			sp, ok := item["SpecialToken"]
			if !ok {
				return postProc{}, fmt.Errorf("post_processor TemplateProcessing single template has an item that is neither SpecialToken nor Sequence")
			}
			st, ok := c.SpecialTokens[sp.ID]
			if !ok {
				return postProc{}, fmt.Errorf("post_processor TemplateProcessing uses special token %q it does not define", sp.ID)
			}
			for _, id := range st.IDs {
				v, err := checkID(fmt.Sprintf("special token %q", sp.ID), id)
				if err != nil {
					return postProc{}, err
				}
				if seenA {
					p.suffix = append(p.suffix, v)
				} else {
					p.prefix = append(p.prefix, v)
				}
			}
		}
		if !seenA {
			return postProc{}, fmt.Errorf("post_processor TemplateProcessing single template has no $A")
		}
		return p, nil
	}
	return postProc{}, fmt.Errorf("unsupported post_processor %q", c.Type)
}

// hfConfig is the part of tokenizer_config.json that decides BOS and EOS.
type hfConfig struct {
	BOSToken    json.RawMessage `json:"bos_token"`
	EOSToken    json.RawMessage `json:"eos_token"`
	AddBOSToken *bool           `json:"add_bos_token"`
	AddEOSToken *bool           `json:"add_eos_token"`
}

// tokenName reads a token written as a string, as {"content": ...}, or as
// null (ok false).
func tokenName(raw json.RawMessage) (string, bool, error) {
	if isNull(raw) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var o struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.Content == nil {
		return "", false, fmt.Errorf("%s is neither a string nor an object with content", raw)
	}
	return *o.Content, true, nil
}

// loadConfig reads the tokenizer_config.json beside the tokenizer.json at
// path, if there is one.
func (t *BPETokenizer) loadConfig(path string) error {
	cp := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	data, err := os.ReadFile(cp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return t.applyConfig(data, cp)
}

func (t *BPETokenizer) applyConfig(data []byte, cp string) error {
	var c hfConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("%s: parsing tokenizer_config.json: %v", cp, err)
	}
	for _, x := range []struct {
		key string
		raw json.RawMessage
		id  *int32
	}{{"bos_token", c.BOSToken, &t.bos}, {"eos_token", c.EOSToken, &t.eos}} {
		name, ok, err := tokenName(x.raw)
		if err != nil {
			return fmt.Errorf("%s: %s %v", cp, x.key, err)
		}
		if !ok {
			continue
		}
		id, ok := t.TokenID(name)
		if !ok {
			return fmt.Errorf("%s: %s %q is not a token of %s", cp, x.key, name, t.path)
		}
		*x.id = id
	}
	t.addBOS, t.addEOS = c.AddBOSToken, c.AddEOSToken
	if t.addBOS != nil && *t.addBOS && t.bos < 0 {
		return fmt.Errorf("%s: add_bos_token is true but there is no bos_token", cp)
	}
	if t.addEOS != nil && *t.addEOS && t.eos < 0 {
		return fmt.Errorf("%s: add_eos_token is true but there is no eos_token", cp)
	}
	return nil
}

// TokenID returns the id of a token of the vocabulary or an added token.
func (t *BPETokenizer) TokenID(tok string) (int32, bool) {
	if id, ok := t.addedID[tok]; ok {
		return id, true
	}
	id, ok := t.vocab[tok]
	return id, ok
}

// BOS returns the beginning-of-sequence token: tokenizer_config.json's
// bos_token, else the first token the post_processor puts before the text.
func (t *BPETokenizer) BOS() (int32, bool) {
	if t.bos >= 0 {
		return t.bos, true
	}
	if len(t.post.prefix) > 0 {
		return t.post.prefix[0], true
	}
	return 0, false
}

// EOS returns the end-of-sequence token: tokenizer_config.json's
// eos_token, else the last token the post_processor puts after the text.
func (t *BPETokenizer) EOS() (int32, bool) {
	if t.eos >= 0 {
		return t.eos, true
	}
	if n := len(t.post.suffix); n > 0 {
		return t.post.suffix[n-1], true
	}
	return 0, false
}

// AddsBOS reports whether EncodeSpecial starts every text with BOS: the
// post_processor puts it there, or tokenizer_config.json's add_bos_token
// says so.
func (t *BPETokenizer) AddsBOS() bool {
	bos, ok := t.BOS()
	ids := t.EncodeSpecial("")
	return ok && len(ids) > 0 && ids[0] == bos
}

// EncodeSpecial returns the ids of s with the special tokens the tokenizer
// adds around a text: those of the post_processor of tokenizer.json, as
// Hugging Face's encode(s, add_special_tokens=True) returns them. Where
// tokenizer_config.json sets add_bos_token or add_eos_token, that decides
// whether BOS starts and EOS ends the ids, as transformers 4's Llama and
// Gemma fast tokenizers arrange by rebuilding the post-processor.
func (t *BPETokenizer) EncodeSpecial(s string) []int32 {
	prefix, suffix := t.post.prefix, t.post.suffix
	if t.addBOS != nil {
		has := len(prefix) > 0 && prefix[0] == t.bos
		switch {
		case *t.addBOS && !has:
			prefix = append([]int32{t.bos}, prefix...)
		case !*t.addBOS && has:
			prefix = prefix[1:]
		}
	}
	if t.addEOS != nil {
		has := len(suffix) > 0 && suffix[len(suffix)-1] == t.eos
		switch {
		case *t.addEOS && !has:
			suffix = append(append([]int32{}, suffix...), t.eos)
		case !*t.addEOS && has:
			suffix = suffix[:len(suffix)-1]
		}
	}
	ids := append([]int32{}, prefix...)
	ids = append(ids, t.Encode(s)...)
	return append(ids, suffix...)
}

// DecodeSkipSpecial returns the text of ids without the special added
// tokens, as Hugging Face's decode(ids, skip_special_tokens=True) does.
func (t *BPETokenizer) DecodeSkipSpecial(ids []int32) string {
	kept := make([]int32, 0, len(ids))
	for _, id := range ids {
		if !t.special[id] {
			kept = append(kept, id)
		}
	}
	return t.Decode(kept)
}

// IsSpecial reports whether id is an added token marked special.
func (t *BPETokenizer) IsSpecial(id int32) bool { return t.special[id] }
