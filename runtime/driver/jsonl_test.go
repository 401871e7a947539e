package driver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/kern"
	"lorac.dev/lorac/runtime/tmpl"
	"lorac.dev/lorac/runtime/tok"
)

func TestIsJSONL(t *testing.T) {
	for path, want := range map[string]bool{"a.jsonl": true, "dir/x.JSONL": true, "a.json": false, "a.txt": false, "jsonl": false, "a.jsonl.txt": false} {
		if IsJSONL(path) != want {
			t.Errorf("IsJSONL(%q) = %v", path, !want)
		}
	}
}

func TestParseJSONL(t *testing.T) {
	data := "\xef\xbb\xbf{\"text\": \"hello\", \"id\": 7}\r\n" +
		`{"prompt": "Q: 2+2?", "completion": " 4"}` + "\n" +
		`{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}` + "\n"
	recs, err := ParseJSONL("d.jsonl", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{Line: 1, Shape: ShapeText, Text: "hello"},
		{Line: 2, Shape: ShapePrompt, Prompt: "Q: 2+2?", Completion: " 4"},
		{Line: 3, Shape: ShapeChat, Messages: []Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}}},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i := range want {
		if recs[i].Line != want[i].Line || recs[i].Shape != want[i].Shape || recs[i].Text != want[i].Text ||
			recs[i].Prompt != want[i].Prompt || recs[i].Completion != want[i].Completion || !slices.Equal(recs[i].Messages, want[i].Messages) {
			t.Errorf("record %d = %+v, want %+v", i, recs[i], want[i])
		}
	}
}

func TestParseJSONLErrors(t *testing.T) {
	good := `{"text": "a"}` + "\n"
	cases := []struct{ data, want string }{
		{"", "d.jsonl: the JSONL file is empty"},
		{"\xef\xbb\xbf", "the JSONL file is empty"},
		{good + "\n" + good, `d.jsonl:2: the line is empty`},
		{good + `{"text": "a"`, `d.jsonl:2: not valid JSON`},
		{`[1, 2]`, `d.jsonl:1: the line is a JSON array, not an object`},
		{`"text"`, `not an object`},
		{`{"input": "a", "output": "b"}`, `d.jsonl:1: unknown record shape (keys "input", "output")`},
		{`{}`, `unknown record shape (no keys)`},
		{`{"text": "a", "prompt": "b", "completion": "c"}`, `mixes the keys of "text" and "prompt"/"completion"`},
		{`{"text": 3}`, `"text" must be a string, not a number`},
		{`{"text": ""}`, `"text" is empty`},
		{`{"prompt": "a"}`, `"prompt" without "completion"`},
		{`{"completion": "a"}`, `"completion" without "prompt"`},
		{`{"prompt": null, "completion": "a"}`, `"prompt" must be a string, not null`},
		{`{"prompt": "a", "completion": ""}`, `"completion" is empty`},
		{`{"messages": "hi"}`, `"messages" must be an array`},
		{`{"messages": []}`, `"messages" is empty`},
		{`{"messages": [3]}`, `messages[0] must be an object`},
		{`{"messages": [{"role": "user"}]}`, `messages[0] has no "content"`},
		{`{"messages": [{"content": "x"}]}`, `messages[0] has no "role"`},
		{`{"messages": [{"role": "user", "content": ["a"]}]}`, `messages[0]: "content" must be a string, not an array`},
		{`{"messages": [{"role": "", "content": "a"}]}`, `messages[0]: "role" is empty`},
		{`{"messages": [{"role": "user", "content": "a"}]}`, `has no "assistant" turn`},
		{"{\"text\": \"\xff\"}", `not valid UTF-8`},
	}
	for _, c := range cases {
		_, err := ParseJSONL("d.jsonl", []byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseJSONL(%q): error %v, want one containing %q", c.data, err, c.want)
		}
	}
}

func TestChatMLPieces(t *testing.T) {
	msgs := []Message{{Role: "system", Content: "S"}, {Role: "user", Content: "U1"}, {Role: "assistant", Content: "A1"}, {Role: "user", Content: "U2"}, {Role: "assistant", Content: "A2"}, {Role: "user", Content: "U3"}}
	pieces, err := ChatPieces(ChatML, msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := []ChatPiece{
		{"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\n", false},
		{"A1<|im_end|>\n", true},
		{"<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n", false},
		{"A2<|im_end|>\n", true},
		{"<|im_start|>user\nU3<|im_end|>\n", false},
	}
	if !slices.Equal(pieces, want) {
		t.Fatalf("pieces\n%+v\nwant\n%+v", pieces, want)
	}
	var all strings.Builder
	for _, p := range pieces {
		all.WriteString(p.Text)
	}
	if whole, _ := (ChatML).Render(msgs, false); all.String() != whole {
		t.Errorf("the pieces do not concatenate to the whole render")
	}
}

// dropSystem renders like ChatML but drops the system turn once an
// assistant turn exists: its renders do not extend each other.
type dropSystem struct{}

func (dropSystem) Render(msgs []Message, gen bool) (string, error) {
	if slices.ContainsFunc(msgs, func(m Message) bool { return m.Role == "assistant" }) {
		msgs = slices.DeleteFunc(slices.Clone(msgs), func(m Message) bool { return m.Role == "system" })
	}
	return ChatML.Render(msgs, gen)
}

func TestChatPiecesRefusesNonPrefixTemplate(t *testing.T) {
	_, err := ChatPieces(dropSystem{}, []Message{{Role: "system", Content: "S"}, {Role: "user", Content: "U"}, {Role: "assistant", Content: "A"}})
	if err == nil || !strings.Contains(err.Error(), "does not extend") {
		t.Fatalf("error %v, want one saying the render does not extend", err)
	}
}

func TestEncoderBytes(t *testing.T) {
	enc, err := NewEncoder(tok.ByteTokenizer{}.Encode, NoSpecials, "chatml")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := enc.Example(Record{Shape: ShapePrompt, Prompt: "ab", Completion: "cd"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ex.Tokens, []int32{'a', 'b', 'c', 'd'}) || !slices.Equal(ex.Train, []bool{false, false, true, true}) {
		t.Errorf("prompt/completion: %v %v", ex.Tokens, ex.Train)
	}
	ex, err = enc.Example(Record{Shape: ShapeText, Text: "xy"})
	if err != nil || !slices.Equal(ex.Train, []bool{true, true}) {
		t.Errorf("text: %v %v", ex.Train, err)
	}
	ex, err = enc.Example(Record{Shape: ShapeChat, Messages: []Message{{Role: "user", Content: "u"}, {Role: "assistant", Content: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	var trained []byte
	for i, tr := range ex.Train {
		if tr {
			trained = append(trained, byte(ex.Tokens[i]))
		}
	}
	if string(trained) != "a<|im_end|>\n" {
		t.Errorf("chat: trained %q, want the assistant turn and its end", trained)
	}
	if want := "<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"; tok.ByteTokenizer.Decode(tok.ByteTokenizer{}, ex.Tokens) != want {
		t.Errorf("chat tokens %q, want %q", tok.ByteTokenizer{}.Decode(ex.Tokens), want)
	}

	plain, _ := NewEncoder(tok.ByteTokenizer{}.Encode, NoSpecials, "")
	if _, err := plain.Example(Record{Shape: ShapeChat, Messages: []Message{{Role: "assistant", Content: "a"}}}); err == nil || !strings.Contains(err.Error(), "--chat-template chatml") {
		t.Errorf("chat without a template: %v", err)
	}
	// The tokenizer's own template (Jinja, runtime/tmpl) renders chats when
	// no --chat-template is given; a .jinja file given replaces it.
	const own = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
	chat, err := tmpl.NewChat("default", own, map[string]string{"eos_token": "$"})
	if err != nil {
		t.Fatal(err)
	}
	templ, err := NewEncoder(tok.ByteTokenizer{}.Encode, Specials{BOS: -1, EOS: -1, Chat: chat}, "")
	if err != nil {
		t.Fatal(err)
	}
	ex, err = templ.Example(Record{Shape: ShapeChat, Messages: []Message{{Role: "user", Content: "u"}, {Role: "assistant", Content: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := (tok.ByteTokenizer{}).Decode(ex.Tokens), "[user]u[assistant]a$"; got != want {
		t.Errorf("the tokenizer's template: %q, want %q", got, want)
	}
	if n := len(ex.Train); !ex.Train[n-1] || !ex.Train[n-2] || ex.Train[n-3] {
		t.Errorf("the tokenizer's template: trained %v, want the reply and its end of turn", ex.Train)
	}
	file := filepath.Join(t.TempDir(), "mine.jinja")
	if err := os.WriteFile(file, []byte("{% for m in messages %}<{{ m.content }}>{% endfor %}{% if add_generation_prompt %}<{% endif %}"), 0o644); err != nil {
		t.Fatal(err)
	}
	mine, err := NewEncoder(tok.ByteTokenizer{}.Encode, Specials{BOS: -1, EOS: -1, Chat: chat}, file)
	if err != nil {
		t.Fatal(err)
	}
	ex, err = mine.Example(Record{Shape: ShapeChat, Messages: []Message{{Role: "user", Content: "u"}, {Role: "assistant", Content: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := (tok.ByteTokenizer{}).Decode(ex.Tokens); got != "<u><a>" {
		t.Errorf("--chat-template FILE.jinja rendered %q, want %q", got, "<u><a>")
	}
	if _, err := NewEncoder(tok.ByteTokenizer{}.Encode, NoSpecials, "llama9"); err == nil || !strings.Contains(err.Error(), "chatml") {
		t.Errorf("unknown --chat-template: %v", err)
	}
}

// bpeDir copies a test tokenizer.json into a directory with the given
// tokenizer_config.json (none when cfg is nil).
func bpeDir(t *testing.T, name string, cfg map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join("../tok/testdata/bpe", name, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		js, _ := json.Marshal(cfg)
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), js, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestLoadSpecials(t *testing.T) {
	// GPT-2 style: EOS <|endoftext|>, no BOS added.
	path := bpeDir(t, "bytelevel", map[string]any{"bos_token": "<|endoftext|>", "eos_token": map[string]any{"content": "<|endoftext|>"}, "add_bos_token": false, "chat_template": "{{ x }}"})
	bt, err := tok.LoadTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := LoadSpecials(path, bt)
	if err != nil {
		t.Fatal(err)
	}
	if sp.EOS != 0 || sp.BOS != 0 || sp.AddBOS || sp.Chat == nil || sp.Chat.Source != "{{ x }}" {
		t.Errorf("bytelevel specials %+v", sp)
	}
	enc, _ := NewEncoder(bt.Encode, sp, "")
	ex, err := enc.Example(Record{Shape: ShapePrompt, Prompt: "The dog", Completion: " jumps"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ex.Tokens); ex.Tokens[n-1] != 0 || !ex.Train[n-1] || ex.Train[0] {
		t.Errorf("prompt/completion with EOS: %v %v", ex.Tokens, ex.Train)
	}

	// Llama style: BOS added by add_bos_token; a list of chat templates.
	path = bpeDir(t, "llama", map[string]any{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true,
		"chat_template": []map[string]string{{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}}})
	lt, err := tok.LoadTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	sp, err = LoadSpecials(path, lt)
	if err != nil {
		t.Fatal(err)
	}
	if sp.BOS != 1 || sp.EOS != 2 || !sp.AddBOS || sp.Chat == nil || sp.Chat.Source != "D" {
		t.Errorf("llama specials %+v", sp)
	}
	enc, _ = NewEncoder(lt.Encode, sp, "")
	ex, err = enc.Example(Record{Shape: ShapeText, Text: "The dog"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ex.Tokens); ex.Tokens[0] != 1 || ex.Tokens[n-1] != 2 {
		t.Errorf("text example %v: want BOS first and EOS last", ex.Tokens)
	}

	// No tokenizer_config.json: a TemplateProcessing post-processor says
	// which BOS the tokenizer adds.
	path = bpeDir(t, "llama", nil)
	var file map[string]any
	raw, _ := os.ReadFile(path)
	json.Unmarshal(raw, &file)
	file["post_processor"] = map[string]any{"type": "Sequence", "processors": []any{
		map[string]any{"type": "ByteLevel"},
		map[string]any{"type": "TemplateProcessing", "single": []any{
			map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}},
			map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
			map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
		}},
	}}
	raw, _ = json.Marshal(file)
	os.WriteFile(path, raw, 0o644)
	if sp, err = LoadSpecials(path, lt); err != nil {
		t.Fatal(err)
	}
	if sp.BOS != 1 || !sp.AddBOS || sp.EOS != 2 {
		t.Errorf("post-processor specials %+v", sp)
	}

	// Errors (found by runtime/tok when it loads the tokenizer, whose
	// reading LoadSpecials shares): a token that is not a token, a bad
	// type, BOS wanted but none.
	for _, c := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"eos_token": "not a token"}, "eos_token"},
		{map[string]any{"eos_token": 3}, "eos_token"},
		{map[string]any{"add_bos_token": true}, "bos_token"},
	} {
		if _, err := tok.LoadTokenizer(bpeDir(t, "bytelevel", c.cfg)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tokenizer_config.json %v: %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	if sp, err := LoadSpecials("", tok.ByteTokenizer{}); err != nil || sp != NoSpecials {
		t.Errorf("bytes: %+v %v", sp, err)
	}
}

func TestExampleBatcherRows(t *testing.T) {
	exs := []Example{
		{Tokens: []int32{1, 2, 3, 4}, Train: []bool{false, false, true, true}},                               // short: padded
		{Tokens: []int32{5, 6, 7, 8, 9, 10, 11}, Train: []bool{false, true, true, true, true, true, true}},   // cut to T+1 = 5
		{Tokens: []int32{1, 2, 3, 4, 5, 6, 7}, Train: []bool{false, false, false, false, false, true, true}}, // nothing trained left: dropped
	}
	const B, T = 2, 4
	eb, err := NewExampleBatcher(exs, B, T)
	if err != nil {
		t.Fatal(err)
	}
	if eb.Stats != (RowStats{Examples: 2, Truncated: 2, Dropped: 1, Targets: 2 + 4}) {
		t.Errorf("stats %+v", eb.Stats)
	}
	in, tg := make([]int32, B*T), make([]int32, B*T)
	if !eb.Sequential(0, in, tg) || eb.Sequential(1, in, tg) {
		t.Fatal("want exactly one sequential batch")
	}
	I := kern.IgnoreTarget
	if !slices.Equal(in, []int32{1, 2, 3, 0, 5, 6, 7, 8}) || !slices.Equal(tg, []int32{I, 3, 4, I, 6, 7, 8, 9}) {
		t.Errorf("rows\n%v\n%v", in, tg)
	}

	// A third row: the second sequential batch is completed with ignored rows.
	eb, _ = NewExampleBatcher(append(exs[:2:2], exs[0]), B, T)
	if eb.SequentialBatches() != 2 || !eb.Sequential(1, in, tg) {
		t.Fatal("want two sequential batches")
	}
	if !slices.Equal(tg[T:], []int32{I, I, I, I}) || !slices.Equal(in[T:], []int32{0, 0, 0, 0}) {
		t.Errorf("padding row %v %v", in[T:], tg[T:])
	}
	if _, err := NewExampleBatcher(exs[2:], B, T); err == nil || !strings.Contains(err.Error(), "trained token") {
		t.Errorf("nothing trainable: %v", err)
	}
}

// TestExampleBatcherEpochsAndResume: every epoch visits each row once, in a
// new order, and a batcher restored from orderState and the RNG's state
// continues with the same batches.
func TestExampleBatcherEpochsAndResume(t *testing.T) {
	const n, B, T = 7, 2, 3
	var exs []Example
	for i := range n {
		exs = append(exs, Example{Tokens: []int32{int32(i), int32(i)}, Train: []bool{false, true}})
	}
	eb, err := NewExampleBatcher(exs, B, T)
	if err != nil {
		t.Fatal(err)
	}
	r := engine.NewRNG(9)
	in, tg := make([]int32, B*T), make([]int32, B*T)
	var seen []int32
	var saved *dataOrder
	var savedRNG []byte
	var after []int32
	for step := range 14 {
		if step == 5 {
			saved, savedRNG = eb.orderState(), r.State()
		}
		eb.Next(r, in, tg)
		for row := range B {
			seen = append(seen, in[row*T])
		}
		if step >= 5 {
			after = append(after, in...)
		}
	}
	for e := range 4 {
		epoch := slices.Clone(seen[e*n : (e+1)*n])
		slices.Sort(epoch)
		if !slices.Equal(epoch, []int32{0, 1, 2, 3, 4, 5, 6}) {
			t.Errorf("epoch %d visits %v", e, seen[e*n:(e+1)*n])
		}
	}
	if slices.Equal(seen[:n], seen[n:2*n]) {
		t.Error("two epochs in the same order")
	}
	eb2, _ := NewExampleBatcher(exs, B, T)
	r2 := engine.NewRNG(0)
	if err := r2.SetState(savedRNG); err != nil {
		t.Fatal(err)
	}
	if err := eb2.setOrderState(saved); err != nil {
		t.Fatal(err)
	}
	var again []int32
	for range 9 {
		eb2.Next(r2, in, tg)
		again = append(again, in...)
	}
	if !slices.Equal(again, after) {
		t.Error("a restored batcher does not continue with the same batches")
	}
	if err := eb2.setOrderState(&dataOrder{Pos: n + 1}); err == nil {
		t.Error("a position past the rows was accepted")
	}
}

func TestSplitExamples(t *testing.T) {
	exs := make([]Example, 10)
	for i := range exs {
		exs[i].Line = i + 1
	}
	tr, va := SplitExamples(exs, 0.2)
	if len(tr) != 8 || len(va) != 2 || va[0].Line != 9 {
		t.Errorf("split %d/%d", len(tr), len(va))
	}
	if tr, va := SplitExamples(exs, 0); len(tr) != 10 || len(va) != 0 {
		t.Errorf("split 0: %d/%d", len(tr), len(va))
	}
}

func TestInstructionSet(t *testing.T) {
	data := InstructionSet(60, 1)
	if !slices.Equal(data, InstructionSet(60, 1)) {
		t.Fatal("two instruction sets from one seed differ")
	}
	if slices.Equal(data, InstructionSet(60, 2)) {
		t.Fatal("seeds 1 and 2 give the same instruction set")
	}
	recs, err := ParseJSONL("instruct", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 60 {
		t.Fatalf("%d records, want 60", len(recs))
	}
	shapes := map[Shape]int{}
	enc, _ := NewEncoder(tok.ByteTokenizer{}.Encode, NoSpecials, "chatml")
	for _, r := range recs {
		shapes[r.Shape]++
		if _, err := enc.Example(r); err != nil {
			t.Fatalf("line %d: %v", r.Line, err)
		}
	}
	if shapes[ShapePrompt] != 40 || shapes[ShapeChat] != 20 {
		t.Errorf("shapes %v, want 40 prompt/completion and 20 chat", shapes)
	}
	if !strings.Contains(string(data), `{"prompt":"Q: `) {
		t.Errorf("prompt records do not start with the prompt: %.80s", data)
	}
}
