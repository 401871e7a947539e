package ptx

import "fmt"

// U64Imm is a 64-bit unsigned immediate, written in hex: PTX reads a
// literal beyond the signed 64-bit range as .u64.
type U64Imm uint64

func (u U64Imm) text() string { return fmt.Sprintf("0x%016X", uint64(u)) }

// The constants of kern.DropoutMask's generator: splitmix64's increment
// (2⁶⁴/φ) and its finaliser's two multipliers.
const (
	splitmixGamma = 0x9e3779b97f4a7c15
	mixMul1       = 0xbf58476d1ce4e5b9
	mixMul2       = 0x94d049bb133111eb
)

// mix64 emits the splitmix64 finaliser of z into a fresh register:
// z ^= z>>30; z *= mixMul1; z ^= z>>27; z *= mixMul2; z ^= z>>31, all
// modulo 2⁶⁴.
func mix64(f *Func, z Reg) Reg {
	e := f.E()
	x, t := f.Reg(U64), f.Reg(U64)
	e.Mov(U64, x, z)
	for _, s := range []struct {
		shift int
		mul   uint64
	}{{30, mixMul1}, {27, mixMul2}, {31, 0}} {
		e.Shr(U64, t, x, Int(s.shift))
		e.Op("xor", B64, x, x, t)
		if s.mul != 0 {
			e.Mul(U64, x, x, U64Imm(s.mul))
		}
	}
	return x
}

// dropoutMask is kern.DropoutMask on the device, in integer arithmetic
// alone, so that the mask equals the host's bit for bit: the key
// mix64(seed ^ mix64(stream + γ)) once per thread, then for element i
// u = mix64(key + i·γ), and the element is 0 when u>>11 (53 random bits)
// is below the threshold, else keep. The host turns p into the threshold
// ⌈p·2⁵³⌉ (the host compares float64(u>>11) < p·2⁵³, both sides exact in
// float64, which for an integer left side is u>>11 < ⌈p·2⁵³⌉) and keep
// into float32(1/(1−p)) (cuda.Lorac.DropoutMask); selp only moves keep's
// bits.
func dropoutMask(Arch) *Func {
	f := NewFunc("lorac_dropout_mask", `mask[i] = (mix64(key + i*gamma) >> 11 < threshold) ? 0 : keep, key = mix64(seed ^ mix64(stream + gamma)),
the generator of kern.DropoutMask (splitmix64), integer arithmetic only.
Params: mask (n f32); n; seed, stream, threshold (u64; threshold = ceil(p*2^53)); keep (f32 = 1/(1-p)). Grid-stride, any grid.`, 256)
	mask, n := f.Param("mask", U64), f.Param("n", U32)
	seed, stream, threshold := f.Param("seed", U64), f.Param("stream", U64), f.Param("threshold", U64)
	keep := f.Param("keep", F32)
	e := f.E()
	s := f.Reg(U64)
	e.Add(U64, s, stream, U64Imm(splitmixGamma))
	s = mix64(f, s)
	e.Op("xor", B64, s, s, seed)
	key := mix64(f, s)
	i, stride := f.GlobalIndex()
	gridLoop(f, i, stride, n, func() {
		c := f.Reg(U64)
		e.Raw("cvt.u64.u32", c, i)
		e.MadLo(U64, c, c, U64Imm(splitmixGamma), key)
		u := mix64(f, c)
		e.Shr(U64, u, u, Int(11))
		drop := f.Reg(Pred)
		e.Setp("lt", U64, drop, u, threshold)
		v := f.Reg(F32)
		e.Selp(F32, v, F32Imm(0), keep, drop)
		e.St("global", F32, Addr{Base: f.Index(mask, i, 4)}, v)
	})
	return f
}
