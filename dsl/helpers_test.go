package dsl

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/alecthomas/participle/v2/lexer"
)

var positionType = reflect.TypeFor[lexer.Position]()

// stripPositions zeroes every lexer.Position reachable from v, so that two
// trees can be compared for their content alone.
func stripPositions(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			stripPositions(v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			stripPositions(v.Index(i))
		}
	case reflect.Struct:
		if v.Type() == positionType {
			v.SetZero()
			return
		}
		for i := range v.NumField() {
			stripPositions(v.Field(i))
		}
	}
}

// parseCheck runs Parse then Check, as the compiler does.
func parseCheck(filename string, src []byte) (*Config, error) {
	f, err := Parse(filename, src)
	if err != nil {
		return nil, err
	}
	return Check(f)
}

// errorList asserts that err is an ErrorList whose every entry has a position.
func errorList(t testing.TB, err error) ErrorList {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not an ErrorList", err, err)
	}
	if len(list) == 0 {
		t.Fatalf("empty ErrorList returned as an error")
	}
	for _, e := range list {
		if e.Pos.Line < 1 || e.Pos.Column < 1 {
			t.Errorf("error without a position: %v", e)
		}
		if e.Msg == "" {
			t.Errorf("error without a message at %v", e.Pos)
		}
	}
	return list
}

// lora files in a testdata directory.
func testdataFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.lora"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/%s/*.lora files: %v", dir, err)
	}
	return files
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
