package kern

// EmbeddingRef gathers rows of the table: out[n,:] = table[ids[n],:], or
// zeros where ids[n] is −1 (a padding row, as a prefill chunk's padding
// positions are).
//
// Shapes: out (N, C), ids (N), table (V, C). Every id must be in [0, V) or
// −1; the kernel indexes with it unchecked, so callers validate token ids.
func EmbeddingRef[F Float](out []F, ids []int32, table []F, N, C int) {
	for n := 0; n < N; n++ {
		id := int(ids[n])
		if id < 0 {
			clear(out[n*C : (n+1)*C])
			continue
		}
		copy(out[n*C:(n+1)*C], table[id*C:(id+1)*C])
	}
}

// EmbeddingGradRef sets dtable to zero, then adds dout[n,:] into row ids[n]
// for every n, so a token seen twice gets the sum of its two gradients.
//
// Shapes: dtable (V, C), dout (N, C), ids (N), every id in [0, V). The
// scatter-add accumulates in F: a float64 accumulator would need (V, C)
// scratch.
func EmbeddingGradRef[F Float](dtable, dout []F, ids []int32, N, V, C int) {
	clear(dtable[:V*C])
	for n := 0; n < N; n++ {
		id := int(ids[n])
		row := dtable[id*C : (id+1)*C]
		for c, g := range dout[n*C : (n+1)*C] {
			row[c] += g
		}
	}
}
