package tmpl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// jsonOpts are the arguments of the tojson filter transformers installs:
// Python's json.dumps with ensure_ascii false unless asked, indent,
// separators and sort_keys.
type jsonOpts struct {
	ascii, sortKeys bool
	pretty          bool
	indent          string
	itemSep, keySep string
}

const maxJSONDepth = 500

func (o *jsonOpts) newline(b *strings.Builder, level int) {
	b.WriteByte('\n')
	for i := 0; i < level; i++ {
		b.WriteString(o.indent)
	}
}

func (o *jsonOpts) encode(b *strings.Builder, v any, level int) error {
	if level > maxJSONDepth || b.Len() > maxOutput {
		return errors.New("tojson: value too deep or too large")
	}
	if t, ok := v.(tuple); ok {
		v = []any(t)
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		switch {
		case math.IsNaN(x):
			b.WriteString("NaN")
		case math.IsInf(x, 1):
			b.WriteString("Infinity")
		case math.IsInf(x, -1):
			b.WriteString("-Infinity")
		default:
			b.WriteString(pyFloat(x))
		}
	case string:
		o.quote(b, x)
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			if o.pretty {
				o.newline(b, level+1)
			}
			if err := o.encode(b, e, level+1); err != nil {
				return err
			}
		}
		if o.pretty {
			o.newline(b, level)
		}
		b.WriteByte(']')
	case *Dict:
		if x.Len() == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := append([]any(nil), x.keys...)
		if o.sortKeys {
			var err error
			sort.SliceStable(keys, func(i, j int) bool {
				c, e := compare(keys[i], keys[j])
				if e != nil && err == nil {
					err = e
				}
				return c < 0
			})
			if err != nil {
				return err
			}
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			if o.pretty {
				o.newline(b, level+1)
			}
			var ks string
			switch kk := k.(type) {
			case string:
				ks = kk
			case nil:
				ks = "null"
			case bool:
				ks = strconv.FormatBool(kk)
			case int64:
				ks = strconv.FormatInt(kk, 10)
			case float64:
				var sb strings.Builder
				_ = o.encode(&sb, kk, level)
				ks = sb.String()
			}
			o.quote(b, ks)
			b.WriteString(o.keySep)
			if err := o.encode(b, x.m[k], level+1); err != nil {
				return err
			}
		}
		if o.pretty {
			o.newline(b, level)
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("Object of type %s is not JSON serializable", typeName(v))
	}
	return nil
}

// quote writes s as Python's json module does.
func (o *jsonOpts) quote(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (o.ascii && r >= 0x7f && r < 0x10000):
				fmt.Fprintf(b, `\u%04x`, r)
			case o.ascii && r >= 0x10000:
				h, l := utf16.EncodeRune(r)
				fmt.Fprintf(b, `\u%04x\u%04x`, h, l)
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// DecodeJSON decodes JSON into template values, keeping the order of object
// keys (as Python's json.loads does), so that tojson and loops over the
// result see the data's order. Integers become int64 (float64 beyond its
// range), other numbers float64.
func DecodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("tmpl: trailing data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("tmpl: JSON nested too deep")
	}
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch x := t.(type) {
	case json.Delim:
		switch x {
		case '[':
			out := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return out, nil
		case '{':
			d := NewDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("tmpl: JSON object key is not a string")
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				d.set(k, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return d, nil
		}
		return nil, fmt.Errorf("tmpl: unexpected %v in JSON", x)
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i, nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		return f, nil
	case string, bool, nil:
		return x, nil
	}
	return nil, fmt.Errorf("tmpl: unexpected JSON token %v", t)
}
