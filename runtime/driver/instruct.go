package driver

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"lorac.dev/lorac/runtime/engine"
)

// InstructionSet writes n synthetic instruction examples as JSONL, for
// showing instruction tuning on a small model: short tasks made from
// templates and word lists by a seeded RNG (arithmetic, opposites,
// spelling backwards, upper case, counting letters), so it ships as code
// and is the same on every machine. Two thirds are prompt/completion
// records ("Q: … A:" and " answer"), the rest chat records with a user and
// an assistant turn, some with a second exchange. Every line parses with
// ParseJSONL.
func InstructionSet(n int, seed uint64) []byte {
	r := engine.NewRNG(seed)
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	task := func() (q, a string) {
		switch r.IntN(5) {
		case 0:
			x, y := r.IntN(10), r.IntN(10)
			return fmt.Sprintf("what is %d plus %d?", x, y), fmt.Sprint(x + y)
		case 1:
			i := r.IntN(len(opposites))
			return fmt.Sprintf("what is the opposite of %s?", opposites[i][0]), opposites[i][1]
		case 2:
			w := pick(instructWords)
			b := []byte(w)
			slices.Reverse(b)
			return fmt.Sprintf("spell %s backwards.", w), string(b)
		case 3:
			w := pick(instructWords)
			return fmt.Sprintf("say %s in capitals.", w), strings.ToUpper(w)
		default:
			w := pick(instructWords)
			return fmt.Sprintf("how many letters are in %s?", w), fmt.Sprint(len(w))
		}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i := range n {
		q, a := task()
		var rec any
		if i%3 != 2 {
			rec = promptRecord{"Q: " + q + "\nA:", " " + a}
		} else {
			msgs := []Message{{Role: "user", Content: q}, {Role: "assistant", Content: a}}
			if r.IntN(3) == 0 {
				q2, a2 := task()
				msgs = append(msgs, Message{Role: "user", Content: q2}, Message{Role: "assistant", Content: a2})
			}
			rec = chatRecord{msgs}
		}
		enc.Encode(rec) // strings cannot fail to encode
	}
	return []byte(b.String())
}

type promptRecord struct {
	Prompt     string `json:"prompt"`
	Completion string `json:"completion"`
}

type chatRecord struct {
	Messages []Message `json:"messages"`
}

var (
	opposites = [][2]string{{"hot", "cold"}, {"big", "small"}, {"up", "down"}, {"fast", "slow"}, {"day", "night"},
		{"old", "new"}, {"wet", "dry"}, {"open", "shut"}, {"left", "right"}, {"early", "late"}, {"full", "empty"}, {"light", "dark"}}
	instructWords = []string{"cat", "boat", "river", "lemon", "green", "stone", "bread", "cloud", "tiger", "apple", "sail", "moon", "paper", "wind"}
)
