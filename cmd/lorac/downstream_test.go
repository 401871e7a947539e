package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDownstreamModule follows the README's "Using lorac from your own
// module" steps in a temporary directory outside the repository, with the
// repository as ../lorac: go mod init, the require and replace, lorac's
// go.sum, go get -tool, the README's model.lora and main.go, go generate,
// go build, and runs the program. It is offline: no module proxy, so every
// dependency must come from the module cache, as after `go mod download`
// in the clone.
func TestDownstreamModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds lorac and a program with the Go toolchain")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go on PATH")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	i := strings.Index(section, "## Using lorac from your own module")
	if i < 0 {
		t.Fatal("README.md has no section \"Using lorac from your own module\"")
	}
	section = section[i:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	blocks := regexp.MustCompile("(?s)```(sh|go)\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) != 3 || blocks[0][1] != "sh" || blocks[1][1] != "go" || blocks[2][1] != "sh" {
		t.Fatalf("the section's code blocks changed shape (sh, go, sh); update this test:\n%s", section)
	}

	root := t.TempDir()
	if err := os.Symlink(repo, filepath.Join(root, "lorac")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=")
	dir := root
	start := time.Now()
	// sh runs the commands of a README block, one line (or && part) at a
	// time, with the comments dropped; cd, mkdir and cp are done here.
	sh := func(block string) {
		for _, line := range strings.FieldsFunc(block, func(r rune) bool { return r == '\n' || r == '&' }) {
			line, _, _ = strings.Cut(line, "#")
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			switch f[0] {
			case "mkdir":
				if err := os.Mkdir(filepath.Join(dir, f[1]), 0o755); err != nil {
					t.Fatal(err)
				}
			case "cd":
				dir = filepath.Join(dir, f[1])
			case "cp":
				b, err := os.ReadFile(filepath.Join(dir, f[1]))
				if err != nil {
					t.Fatal(err)
				}
				to := filepath.Join(dir, f[2])
				if f[2] == "." {
					to = filepath.Join(dir, filepath.Base(f[1]))
				}
				if err := os.WriteFile(to, b, 0o644); err != nil {
					t.Fatal(err)
				}
			case "go":
				c := exec.Command(gobin, f[1:]...)
				c.Dir, c.Env = dir, env
				if out, err := c.CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", line, err, out)
				}
			case "./app":
				c := exec.Command(filepath.Join(dir, "app"))
				out, err := c.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", line, err, out)
				}
				if !regexp.MustCompile(`^tiny: one LoRA step, loss \d+\.\d{3}\n$`).Match(out) {
					t.Errorf("the program printed %q", out)
				}
			default:
				t.Fatalf("the README runs %q, which this test does not know", line)
			}
		}
	}
	sh(blocks[0][2])
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(blocks[1][2]), 0o644); err != nil {
		t.Fatal(err)
	}
	sh(blocks[2][2])
	if _, err := os.Stat(filepath.Join(dir, "model", "model.go")); err != nil {
		t.Errorf("go generate wrote no package: %v", err)
	}
	t.Logf("the README's steps took %v", time.Since(start).Round(time.Second))
}
