package kern

// Fill sets every element of dst to v: ones for norm gains, zeros for lora_B
// (so the adapted model starts equal to the base).
func Fill(dst []float32, v float32) {
	for i := range dst {
		dst[i] = v
	}
}
