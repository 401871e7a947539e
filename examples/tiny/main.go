// Command tiny trains a LoRA adapter on the tiny model through the package
// lorac generated for it (in model/, from tiny.lora), the way a downstream
// project uses lorac: go generate, then plain Go.
//
//	go generate ./examples/tiny
//	go run ./examples/tiny -base model.safetensors -steps 50
//
// Without -base it starts from a random base, which is enough to see the
// API work but not to get good text.
package main

//go:generate go run lorac.dev/lorac/cmd/lorac compile tiny.lora -o model --pkg model

import (
	"flag"
	"fmt"
	"log"

	"lorac.dev/lorac/examples/tiny/model"
	"lorac.dev/lorac/runtime/driver"
	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/tok"
)

func main() {
	base := flag.String("base", "", "base weights (model.safetensors)")
	steps := flag.Int("steps", 20, "LoRA training steps")
	out := flag.String("out", "tiny-adapter", "where to write the PEFT adapter")
	flag.Parse()

	m := model.New()
	if *base != "" {
		if err := m.LoadBase(*base); err != nil {
			log.Fatal(err)
		}
	} else {
		m.InitBase(1)
	}
	m.InitAdapter(2)

	text, err := driver.Corpus("recipe", 200_000, 3)
	if err != nil {
		log.Fatal(err)
	}
	batches, err := driver.NewBatcher(tok.ByteTokenizer{}.Encode(text), model.Batch, model.Seq)
	if err != nil {
		log.Fatal(err)
	}
	rng := engine.NewRNG(4)
	tokens, targets := make([]int32, model.Batch*model.Seq), make([]int32, model.Batch*model.Seq)
	for step := range *steps {
		batches.Next(rng, tokens, targets)
		loss, err := m.TrainStep(tokens, targets)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("step %3d  loss %.4f\n", step+1, loss)
	}

	var tok tok.ByteTokenizer
	ids, err := m.Generate(tok.Encode("Recipe 1: "), 80, engine.Sampler{Temperature: 0.8, TopK: 20}, engine.NewRNG(5))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Decode(ids))
	if err := m.SaveAdapter(*out); err != nil {
		log.Fatal(err)
	}
	fmt.Println("adapter written to", *out)
}
