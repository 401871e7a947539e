package driver

import (
	"fmt"
	"strings"

	"lorac.dev/lorac/runtime/engine"
)

// Corpus writes about n bytes of synthetic text in one of two styles, for
// lorac's built-in demonstration: "log" (a ship's log, the base model's
// domain) and "recipe" (a cookbook, the adapter's domain). The text is made
// from templates and word lists by a seeded RNG, so it ships as code, not
// data, and is the same on every machine.
func Corpus(kind string, n int, seed uint64) (string, error) {
	r := engine.NewRNG(seed)
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	var b strings.Builder
	switch kind {
	case "log":
		for day := 1; b.Len() < n; day++ {
			fmt.Fprintf(&b, "Day %d. Wind from the %s at %d knots. Sea %s. ", day, pick(logWinds), 4+r.IntN(30), pick(logSeas))
			for range 1 + r.IntN(3) {
				fmt.Fprintf(&b, "%s %s %s. ", pick(logSubjects), pick(logVerbs), pick(logObjects))
			}
			switch r.IntN(3) {
			case 0:
				fmt.Fprintf(&b, "Our cook made %s %s with %s and %s. ", strings.ToLower(pick(recipeAdjectives)), pick(recipeDishes), pick(recipeFoods), pick(recipeFoods))
			case 1:
				fmt.Fprintf(&b, "The cook had us %s the %s %s. ", strings.ToLower(pick(recipeVerbs)), pick(recipeFoods), pick(recipeHow))
			}
			fmt.Fprintf(&b, "Course held at %d degrees.\n", 10*r.IntN(36))
		}
	case "recipe":
		for k := 1; b.Len() < n; k++ {
			fmt.Fprintf(&b, "Recipe %d: %s %s. Serves %d.\nIngredients: ", k, pick(recipeAdjectives), pick(recipeDishes), 2+r.IntN(5))
			m := 2 + r.IntN(4)
			for i := range m {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%d %s %s", 1+r.IntN(4), pick(recipeUnits), pick(recipeFoods))
			}
			b.WriteString(".\nMethod: ")
			for i := range 2 + r.IntN(3) {
				fmt.Fprintf(&b, "%d. %s the %s %s. ", i+1, pick(recipeVerbs), pick(recipeFoods), pick(recipeHow))
			}
			b.WriteString("\n")
		}
	default:
		return "", fmt.Errorf("unknown corpus %q; there are log and recipe", kind)
	}
	return b.String(), nil
}

var (
	logWinds    = []string{"north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west"}
	logSeas     = []string{"calm", "slight", "moderate", "rough", "very rough", "glassy"}
	logSubjects = []string{"The watch", "The mate", "Our cook", "The captain", "Two hands", "The lookout"}
	logVerbs    = []string{"sighted", "reported", "repaired", "logged", "hailed", "lost sight of"}
	logObjects  = []string{"a fishing boat off the port bow", "gulls astern", "the main sail", "a light to the west",
		"a whale to starboard", "the forward hatch", "a squall on the horizon", "the coast at dawn"}
	recipeAdjectives = []string{"Lemon", "Spiced", "Roast", "Green", "Smoky", "Honey", "Garlic", "Summer"}
	recipeDishes     = []string{"barley soup", "chicken stew", "lentil salad", "bean pie", "carrot cake", "fish curry"}
	recipeUnits      = []string{"cups", "spoons of", "handfuls of", "slices of", "pinches of"}
	recipeFoods      = []string{"barley", "onion", "garlic", "carrots", "lentils", "rice", "butter", "flour", "beans", "lemon"}
	recipeVerbs      = []string{"Rinse", "Chop", "Simmer", "Stir", "Roast", "Fold", "Season", "Whisk"}
	recipeHow        = []string{"gently", "for ten minutes", "until golden", "over low heat", "with a pinch of salt", "well"}
)
