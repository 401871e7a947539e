package graph

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints the graph one declaration or node per line:
//
//	param transformer.wte.weight [256, 128] f32 base frozen
//	input %tokens [16, 128] i32
//	%5 [16, 128, 128] f32 = embedding(%tokens, transformer.wte.weight)
func (g *Graph) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %s (%s)\n", g.Name, g.Mode)
	for _, v := range g.Params {
		p := v.Param
		state := "frozen"
		if p.Trainable {
			state = "trainable"
		}
		fmt.Fprintf(&b, "param %s %s %s %s %s\n", p.Name, p.Shape, p.DType, p.Role, state)
	}
	for _, v := range g.Inputs {
		fmt.Fprintf(&b, "input %s %s %s\n", v.Ref(), v.Shape, v.DType)
	}
	for _, n := range g.Nodes {
		b.WriteString(nodeLine(n))
		b.WriteByte('\n')
	}
	for _, v := range g.Outputs {
		fmt.Fprintf(&b, "output %s\n", v.Ref())
	}
	for _, v := range g.Grads {
		fmt.Fprintf(&b, "grad %s = %s\n", v.GradOf.Name, v.Ref())
	}
	if p := g.Plan; p != nil {
		fmt.Fprintf(&b, "memory arena=%d naive=%d weights=%d adapter=%d grads=%d optimizer=%d inputs=%d total=%d\n",
			p.ArenaBytes, p.NaiveBytes, p.WeightBytes, p.AdapterBytes, p.GradBytes, p.OptimizerBytes, p.InputBytes, p.TotalBytes())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func nodeLine(n *Node) string {
	var b strings.Builder
	for i, o := range n.Out {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s %s", o.Ref(), o.Shape, o.DType)
	}
	fmt.Fprintf(&b, " = %s(", n.Op)
	for i, v := range n.In {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v.Ref())
	}
	b.WriteByte(')')
	if a := attrText(n); a != "" {
		b.WriteString(" {" + a + "}")
	}
	if n.Module != "" {
		b.WriteString(" @" + n.Module)
	}
	return b.String()
}

func attrText(n *Node) string {
	a := n.Attr
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	if a.Eps != 0 {
		add("eps=%g", a.Eps)
	}
	if a.Offset != 0 {
		add("offset=%g", a.Offset)
	}
	if a.Heads != 0 {
		add("heads=%d", a.Heads)
	}
	if a.KVHeads != 0 {
		add("kv_heads=%d", a.KVHeads)
	}
	if a.Window != 0 {
		add("window=%d", a.Window)
	}
	if a.AttnScale != 0 {
		add("attn_scale=%g", a.AttnScale)
	}
	if a.Softcap != 0 {
		add("softcap=%g", a.Softcap)
	}
	if a.Theta != 0 {
		add("theta=%g", a.Theta)
	}
	switch r := a.Rope; r.Kind {
	case "":
	case "linear":
		add("rope_scaling=linear factor=%g", r.Factor)
	default:
		add("rope_scaling=%s factor=%g low_freq=%g high_freq=%g original_context=%d", r.Kind, r.Factor, r.LowFreq, r.HighFreq, r.OrigContext)
	}
	if a.Scale != 0 {
		add("scale=%g", a.Scale)
	}
	if a.Dropout != 0 {
		add("dropout=%g", a.Dropout)
	}
	if a.Conv1D {
		add("conv1d")
	}
	if a.Sizes != nil {
		add("sizes=%v", a.Sizes)
	}
	if n.Op == OpFill {
		add("value=%g shape=%s", a.Value, a.Shape)
	}
	return strings.Join(parts, " ")
}

// WriteDOT prints the graph for Graphviz: ops are boxes, base parameters grey,
// LoRA parameters orange, trainable parameters bold.
func (g *Graph) WriteDOT(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n  rankdir=TB;\n  node [fontname=\"monospace\" fontsize=10];\n", g.Name)
	id := func(v *Value) string { return fmt.Sprintf("v%d", v.ID) }
	for _, v := range g.Params {
		color := "grey80"
		if v.Param.Role == LoRA {
			color = "orange"
		}
		style := "filled"
		if v.Param.Trainable {
			style = "filled,bold"
		}
		fmt.Fprintf(&b, "  %s [label=%q shape=ellipse style=%q fillcolor=%q];\n", id(v), v.Param.Name+"\n"+v.Shape.String(), style, color)
	}
	for _, v := range g.Inputs {
		fmt.Fprintf(&b, "  %s [label=%q shape=invhouse];\n", id(v), v.Ref()+"\n"+v.Shape.String())
	}
	for _, n := range g.Nodes {
		color := "lightblue"
		if n.Op.Info().Backward {
			color = "mistyrose"
		}
		label := n.Op.String()
		if n.Module != "" {
			label += "\n" + n.Module
		}
		fmt.Fprintf(&b, "  n%d [label=%q shape=box style=filled fillcolor=%q];\n", n.ID, label, color)
		for _, v := range n.In {
			src := id(v)
			if v.Producer != nil {
				src = fmt.Sprintf("n%d", v.Producer.ID)
			}
			fmt.Fprintf(&b, "  %s -> n%d [label=%q];\n", src, n.ID, v.Shape.String())
		}
	}
	for i, v := range g.Outputs {
		src := id(v)
		if v.Producer != nil {
			src = fmt.Sprintf("n%d", v.Producer.ID)
		}
		fmt.Fprintf(&b, "  out%d [label=%q shape=house];\n  %s -> out%d;\n", i, "output "+v.Ref(), src, i)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}
