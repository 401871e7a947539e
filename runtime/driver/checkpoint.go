package driver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/format"
)

// Checkpoint files inside a checkpoint directory, next to the adapter's
// PEFT files (or model.safetensors when the base itself trains).
const (
	checkpointOptimizer = "optimizer.safetensors"
	checkpointState     = "trainer_state.json"
)

// trainerState is what a resumed run needs besides weights and moments.
type trainerState struct {
	Step      int       `json:"step"`       // optimizer updates done
	Full      bool      `json:"full"`       // the base trained, not an adapter
	RNG       string    `json:"rng"`        // base64 of the batch sampler's RNG state
	TrainLoss []float64 `json:"train_loss"` // per step, for the loss curve
	ValSteps  []int     `json:"val_steps"`
	ValLoss   []float64 `json:"val_loss"`
	// The learning-rate schedule the run started with (engine.TrainSpec's
	// ForRun), so that a resumed run follows it whatever --steps it is
	// given. Checkpoints written before these fields have 0: they followed
	// the .lora's steps and warmup.
	ScheduleSteps  int `json:"schedule_steps,omitempty"`
	ScheduleWarmup int `json:"schedule_warmup,omitempty"`
	// GradAccum is --grad-accum when above 1; DataOrder the JSONL
	// batcher's epoch permutation seed and position (nil for text data, or
	// before the first batch).
	GradAccum int        `json:"grad_accum,omitempty"`
	DataOrder *dataOrder `json:"data_order,omitempty"`
}

// saveCheckpoint writes dir atomically: everything goes to a fresh
// temporary directory that replaces dir only when complete, so a run killed
// mid-save leaves the previous checkpoint whole.
func saveCheckpoint(c *engine.Core, dir string, full bool, rng *engine.RNG, st trainerState) error {
	// The weights and moments may be resident on a device: bring the
	// host's copies up to date before writing them.
	if err := c.Sync(); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	params := c.LoRA
	if full {
		params = c.Base
		if err := c.SaveBase(filepath.Join(tmp, "model.safetensors")); err != nil {
			return err
		}
	} else if err := c.SaveAdapter(tmp); err != nil {
		return err
	}
	m, v := c.Opt.M, c.Opt.V
	if len(m) != len(params) {
		m, v = make([]float32, len(params)), make([]float32, len(params))
	}
	err = format.WriteSafetensors(filepath.Join(tmp, checkpointOptimizer), []format.WriteTensor{
		{Name: "adamw.m", Shape: []int{len(m)}, Data: m},
		{Name: "adamw.v", Shape: []int{len(v)}, Data: v},
	}, nil)
	if err != nil {
		return err
	}
	st.Step, st.Full, st.RNG = c.Opt.Step, full, base64.StdEncoding.EncodeToString(rng.State())
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	err = format.WriteFileAtomic(filepath.Join(tmp, checkpointState), func(w io.Writer) error {
		_, err := w.Write(append(js, '\n'))
		return err
	})
	if err != nil {
		return err
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Rename(old, dir)
		return err
	}
	return os.RemoveAll(old)
}

// loadCheckpoint restores weights, AdamW moments, the step and the sampler's
// RNG from dir, so that training continues exactly as if it had not stopped.
func loadCheckpoint(c *engine.Core, dir string, full bool, rng *engine.RNG) (trainerState, error) {
	var st trainerState
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		// A run killed between saveCheckpoint's two renames left only the
		// previous checkpoint, under its .old name.
		if _, err := os.Stat(dir + ".old"); err == nil {
			dir += ".old"
		}
	}
	path := filepath.Join(dir, checkpointState)
	js, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(js, &st); err != nil {
		return st, fmt.Errorf("%s: %v", path, err)
	}
	if st.Full != full {
		return st, fmt.Errorf("%s: the checkpoint trained %s, this run trains %s; match --full", path, what(st.Full), what(full))
	}
	raw, err := base64.StdEncoding.DecodeString(st.RNG)
	if err != nil {
		return st, fmt.Errorf("%s: rng: %v", path, err)
	}
	if err := rng.SetState(raw); err != nil {
		return st, fmt.Errorf("%s: rng: %v", path, err)
	}
	params := c.LoRA
	if full {
		params = c.Base
		if err := c.LoadBase(filepath.Join(dir, "model.safetensors")); err != nil {
			return st, err
		}
	} else if err := c.LoadAdapter(dir); err != nil {
		return st, err
	}
	opt, err := format.OpenSafetensors(filepath.Join(dir, checkpointOptimizer))
	if err != nil {
		return st, err
	}
	defer opt.Close()
	m, v := make([]float32, len(params)), make([]float32, len(params))
	if err := errors.Join(opt.ReadFloat32("adamw.m", []int{len(m)}, m), opt.ReadFloat32("adamw.v", []int{len(v)}, v)); err != nil {
		return st, err
	}
	c.SetOptimizer(engine.Optimizer{M: m, V: v, Step: st.Step})
	return st, nil
}

func what(full bool) string {
	if full {
		return "every base parameter (--full)"
	}
	return "an adapter"
}
