//go:build amd64 && !purego

package kern

//go:generate go run lorac.dev/lorac/internal/cmd/asmgen -o . -pkg kern

var isaLevels = []isaLevel{
	{
		name: "avx512", lanes: 16, has: hasAVX512,
		// Eight columns (rank-8 LoRA products) run best on the AVX2 tile: a
		// Y register wastes nothing there, and AVX-512 CPUs have AVX2.
		tiles: []gemmTile{{12, 32, gemmAVX512x12x32, gemmAVX512x12x32Rows}, {12, 16, gemmAVX512x12x16, gemmAVX512x12x16Rows},
			{12, 8, gemmAVX2x12x8, gemmAVX2x12x8Rows}},
		gemv: gemvAVX512, dots: dotsAVX512, exp: expAVX512, peak: fmaPeakAVX512,
		gelu: geluAVX512, geluGrad: geluGradAVX512,
	},
	{
		name: "avx2", lanes: 8, has: hasAVX2,
		tiles: []gemmTile{{6, 16, gemmAVX2x6x16, gemmAVX2x6x16Rows}, {12, 8, gemmAVX2x12x8, gemmAVX2x12x8Rows}},
		gemv:  gemvAVX2, dots: dotsAVX2, exp: expAVX2, peak: fmaPeakAVX2,
		gelu: geluAVX2, geluGrad: geluGradAVX2,
	},
}

// cpuFeatures reads CPUID and XCR0 once.
var cpuFeatures = func() (f struct{ avx2, avx512 bool }) {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return f
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return f
	}
	xcr0, _ := xgetbv0()
	_, ebx7, _, _ := cpuid(7, 0)
	const avx2, avx512f = 1 << 5, 1 << 16
	const ymmState, zmmState = 0x6, 0xe0 // XMM|YMM; opmask|ZMM_Hi256|Hi16_ZMM
	f.avx2 = ebx7&avx2 != 0 && xcr0&ymmState == ymmState
	f.avx512 = f.avx2 && ebx7&avx512f != 0 && xcr0&zmmState == zmmState
	return f
}()

func hasAVX2() bool   { return cpuFeatures.avx2 }
func hasAVX512() bool { return cpuFeatures.avx512 }
